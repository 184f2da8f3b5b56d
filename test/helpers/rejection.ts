/** The error a promise rejects with; fails the test if it resolves. */
export async function rejectionOf(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}
