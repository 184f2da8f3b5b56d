// Commands run in the proxy container for the certificate runbook: files written atomically with a
// mode, the ACME account key made on the host, a certificate installed only beside its own key.
// Each is `sh -c <script> <name> <args...>`: values travel as arguments, never through the shell.
import { certificateRequestArgv, selfSignedCertificateArgv } from '../certificates';
import { ACME_WEBROOT, TLS_DIR, tlsFiles } from './nginx';

const sh = (name: string, script: string[], ...args: string[]): string[] => ['sh', '-c', script.join('\n'), name, ...args];

function checkPath(path: string): void {
  if (!path.startsWith('/') || path.includes('..') || /[\0\n]/.test(path)) throw new Error(`not a safe absolute path: ${JSON.stringify(path)}`);
}

/** Writes `content` to `path` (mode `mode`, directories made as needed) through a temporary file and a rename. */
export function writeFileArgv(path: string, content: string, mode: '0600' | '0644'): string[] {
  checkPath(path);
  if (content.includes('\0')) throw new Error('file content cannot contain NUL bytes');
  return sh('write-file', ['umask 077', 'mkdir -p "$(dirname "$1")" || exit 1', 'printf \'%s\' "$3" > "$1.tmp" && chmod "$2" "$1.tmp" && mv -f "$1.tmp" "$1"'], path, mode, content);
}

/** Removes the files (absent ones are fine); prints how many existed. */
export function removeFilesArgv(paths: string[]): string[] {
  paths.forEach(checkPath);
  return sh('remove-files', ['n=0', 'for f in "$@"; do if [ -e "$f" ]; then rm -f -- "$f" && n=$((n+1)); fi; done', 'echo "$n"'], ...paths);
}

export const ACME_CHALLENGE_DIR = `${ACME_WEBROOT}/.well-known/acme-challenge`;

/** Removes every HTTP-01 token file (and the preflight's probe); prints how many there were. */
export function clearChallengeFilesArgv(): string[] {
  return sh('clear-challenges', ['d="$1"', '[ -d "$d" ] || { echo 0; exit 0; }', 'n=$(find "$d" -maxdepth 1 -type f | wc -l)', 'find "$d" -maxdepth 1 -type f -delete', 'echo "$n"'], ACME_CHALLENGE_DIR);
}

export const ACME_ACCOUNT_KEY = `${TLS_DIR}/acme-account.key`;

/** Exit codes of {@link accountKeyArgv} besides 0: which step failed (its stdout is never shown: it may hold part of the key). */
export const ACCOUNT_KEY_EXIT = { directory: 20, generate: 21, read: 22 } as const;
export const ACCOUNT_KEY_EXIT_MEANING: Record<number, string> = {
  [ACCOUNT_KEY_EXIT.directory]: 'cannot make its directory',
  [ACCOUNT_KEY_EXIT.generate]: 'cannot make the key',
  [ACCOUNT_KEY_EXIT.read]: 'cannot read the key file',
};

/**
 * Makes the ACME account key on the host once (ECDSA P-256, 0600) and prints it: the activity that
 * signs the CA requests reads it into memory for that call only; it is never an input or a result.
 * Its stdout is a secret: a failure is told by the exit code ({@link ACCOUNT_KEY_EXIT}) and stderr.
 */
export function accountKeyArgv(path = ACME_ACCOUNT_KEY): string[] {
  checkPath(path);
  const exit = ACCOUNT_KEY_EXIT;
  return sh(
    'acme-account-key',
    [
      'umask 077',
      `mkdir -p "$(dirname "$1")" || exit ${exit.directory}`,
      `[ -s "$1" ] || { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.tmp" 2>/dev/null && mv -f "$1.tmp" "$1"; } || exit ${exit.generate}`,
      `cat "$1" || exit ${exit.read}`,
    ],
    path,
  );
}

/** A new certificate key on the host (`<id>.key.next`, 0600) and its CSR on stdout (public). */
export function newKeyAndCsrArgv(id: string, domains: string[]): string[] {
  const files = tlsFiles(id);
  const openssl = certificateRequestArgv({ names: domains, keyFile: `${files.key}.next` });
  return sh('new-key', ['umask 077', 'mkdir -p "$(dirname "$1")" || exit 1', 'shift', 'exec "$@"'], files.key, ...openssl);
}

/** A self-signed certificate and its key on the host (`<id>.crt.next`, `<id>.key.next`), to be installed. */
export function selfSignedArgv(id: string, domains: string[], days: number): string[] {
  const files = tlsFiles(id);
  const openssl = selfSignedCertificateArgv({ names: domains, keyFile: `${files.key}.next`, certFile: `${files.certificate}.next`, days });
  return sh('self-signed', ['umask 077', 'mkdir -p "$(dirname "$1")" || exit 1', 'shift', 'exec "$@" 2>&1'], files.key, ...openssl);
}

/** Exit codes of {@link installCertificateArgv} besides 0. */
export const INSTALL_EXIT = { noCertificate: 10, keyMismatch: 11, noKey: 12 } as const;

/**
 * Puts `<id>.crt.next` (written before) in place with its key: the new key `<id>.key.next` when
 * there is one, else the key already in place (a retried install). The certificate's public key
 * must be the key's, or nothing moves. Prints the installed certificate.
 */
export function installCertificateArgv(id: string): string[] {
  const f = tlsFiles(id);
  return sh(
    'install-certificate',
    [
      'crt=$1; key=$2',
      `[ -s "$crt.next" ] || exit ${INSTALL_EXIT.noCertificate}`,
      'if [ -s "$key.next" ]; then k="$key.next"; elif [ -s "$key" ]; then k="$key"; else exit ' + INSTALL_EXIT.noKey + '; fi',
      'a=$(openssl x509 -noout -pubkey -in "$crt.next") || exit 1',
      'b=$(openssl pkey -pubout -in "$k") || exit 1',
      `[ "$a" = "$b" ] || exit ${INSTALL_EXIT.keyMismatch}`,
      'chmod 600 "$k" && chmod 644 "$crt.next" || exit 1',
      // the key first: nginx reads both only at a reload, which the runbook does after this
      'if [ "$k" = "$key.next" ]; then mv -f "$key.next" "$key" || exit 1; fi',
      'mv -f "$crt.next" "$crt" || exit 1',
      'cat "$crt"',
    ],
    f.certificate,
    f.key,
  );
}
