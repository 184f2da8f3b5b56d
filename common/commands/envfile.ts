// Env files (KEY=VALUE, as Docker and systemd read them). Values are secrets: only names leave here.
import { parse } from 'dotenv';

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Parses env file text into a map with dotenv: comments, blank lines, `export KEY=...`, quoted and
 * multi-line values. Names a shell could not use (dotenv also takes `.` and `-`) are left out.
 */
export function parseEnvFile(text: string): Map<string, string> {
  return new Map(Object.entries(parse(text)).filter(([name]) => NAME.test(name)));
}

/** Required variables that are missing or empty (names only). */
export function missingVariables(vars: Map<string, string>, required: readonly string[]): string[] {
  return required.filter((name) => !vars.get(name));
}

/** Docker's `Env` form. */
export function toDockerEnv(vars: Iterable<[string, string]>): string[] {
  return [...vars].map(([k, v]) => `${k}=${v}`);
}
