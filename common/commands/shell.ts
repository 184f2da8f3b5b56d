// Host commands are argv arrays built here and quoted once, never assembled by string concatenation.

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one word for a POSIX shell. */
export function shellQuoteWord(word: string): string {
  if (word === '') return "''";
  if (SAFE.test(word)) return word;
  return `'${word.replace(/'/g, `'"'"'`)}'`;
}

/** Turns an argv array into one command line a POSIX shell runs as exactly that argv. */
export function shellQuote(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('empty command');
  return argv.map(shellQuoteWord).join(' ');
}

/** `df` in POSIX format (1K blocks) for the filesystem holding `path`. */
export const freeDiskArgv = (path: string): string[] => ['df', '-Pk', '--', path];

/** Available MB from `df -Pk` output; throws when the output is not what df prints. */
export function parseDfAvailableMb(stdout: string): number {
  const lines = stdout.trim().split('\n');
  const fields = lines[lines.length - 1]?.trim().split(/\s+/) ?? [];
  const availableKb = Number(fields[3]);
  if (lines.length < 2 || !Number.isFinite(availableKb)) throw new Error(`unexpected df output: ${JSON.stringify(stdout.slice(0, 200))}`);
  return Math.floor(availableKb / 1024);
}

/** Exit 0 when `path` is a readable regular file. */
export const fileReadableArgv = (path: string): string[] => ['test', '-f', path, '-a', '-r', path];

/** TCP listeners on the host, one per line, no header. */
export const listeningSocketsArgv = (): string[] => ['ss', '-Hltn'];

/** True when `ss -Hltn` output shows something listening on `port` at `address` or a wildcard. */
export function portIsListening(ssOutput: string, address: string, port: number): boolean {
  return ssOutput.split('\n').some((line) => {
    const local = line.trim().split(/\s+/)[3];
    if (!local) return false;
    const i = local.lastIndexOf(':');
    const host = local.slice(0, i).replace(/^\[|\]$/g, '').replace(/%.*$/, '');
    return Number(local.slice(i + 1)) === port && (host === address || host === '*' || host === '0.0.0.0' || host === '::');
  });
}
