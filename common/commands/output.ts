// A command's output on its way into an error message: stdout that may hold a secret (a private key
// read with `cat`) never goes there; stderr does, bounded and redacted (PEM blocks, key-like base64,
// anything the secret stdout holds), so a failure still says what went wrong.

const PEM_BLOCK = /-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(?:-----END [A-Z0-9 ]+-----|$)/g;
/** Runs of base64 long enough to be key material (a PEM line is 64). */
const KEY_LIKE = /[A-Za-z0-9+/]{40,}={0,2}/g;
const REDACTED = '[redacted]';

/**
 * `text` fit for an error: PEM blocks (also cut-off ones), key-like base64 runs and every line of
 * `secret` (the stdout of a command that prints a secret) replaced by [redacted]; at most `max` characters.
 */
export function redactOutput(text: string, options: { secret?: string; max?: number } = {}): string {
  // whole PEM blocks first: their BEGIN/END lines are what finds them
  let out = text.replace(PEM_BLOCK, REDACTED);
  const lines = (options.secret ?? '').split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length >= 4);
  for (const l of [...new Set(lines)].sort((a, b) => b.length - a.length)) out = out.split(l).join(REDACTED);
  out = out.replace(KEY_LIKE, REDACTED).trim();
  const max = options.max ?? 500;
  return out.length > max ? `${out.slice(0, max)}…` : out;
}

export interface CommandOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * "<what> failed (exit N): <output>" for a command that did not exit 0. With `secretStdout` the
 * stdout is never shown (and redacted from stderr); else stderr, or stdout when stderr is empty.
 */
export function commandFailure(what: string, r: CommandOutcome, options: { secretStdout?: boolean; exitMeanings?: Record<number, string> } = {}): string {
  const meaning = options.exitMeanings?.[r.exitCode];
  const shown = options.secretStdout ? redactOutput(r.stderr, { secret: r.stdout }) : redactOutput(r.stderr.trim() || r.stdout);
  return `${what} failed (exit ${r.exitCode}${meaning ? `: ${meaning}` : ''})${shown ? `: ${shown}` : ''}`;
}
