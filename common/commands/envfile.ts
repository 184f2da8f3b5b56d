// Env files (KEY=VALUE, as Docker and systemd read them). Values are secrets: only names leave here.

/** Parses env file text into a map. Accepts comments, blank lines, `export KEY=...` and quoted values. */
export function parseEnvFile(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2];
    if (value.length >= 2 && ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'")))) {
      value = value.slice(1, -1);
    }
    vars.set(m[1], value);
  }
  return vars;
}

/** Required variables that are missing or empty (names only). */
export function missingVariables(vars: Map<string, string>, required: readonly string[]): string[] {
  return required.filter((name) => !vars.get(name));
}

/** Docker's `Env` form. */
export function toDockerEnv(vars: Iterable<[string, string]>): string[] {
  return [...vars].map(([k, v]) => `${k}=${v}`);
}
