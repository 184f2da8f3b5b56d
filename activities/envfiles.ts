// Env files are read on the worker at use. Their values go to the engine and nowhere else:
// errors name files and variables, never values.
import { readFile } from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import { missingVariables, parseEnvFile, toDockerEnv } from '../common/commands/envfile';
import type { EnvFileRef } from '../common/types';

export async function readEnvFile(ref: EnvFileRef): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(ref.path, 'utf8');
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`env file ${ref.path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'EnvFileMissing');
  }
  const vars = parseEnvFile(text);
  const missing = missingVariables(vars, ref.required);
  if (missing.length) {
    throw ApplicationFailure.nonRetryable(`env file ${ref.path} lacks required variable(s): ${missing.join(', ')}`, 'EnvFileIncomplete');
  }
  return vars;
}

/** Docker `Env` entries from all env files, later files winning. */
export async function dockerEnvFrom(refs: EnvFileRef[]): Promise<string[]> {
  const merged = new Map<string, string>();
  for (const ref of refs) for (const [k, v] of await readEnvFile(ref)) merged.set(k, v);
  return toDockerEnv(merged);
}
