// The lock's workflow type and message names live in common/lock.ts: the activities and the CLI use
// them without importing workflow code, and they must stay the names the lock workflow handles.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { acquireLockUpdate, LOCK_WORKFLOW_TYPE, lockHolderQuery, releaseLockSignal } from '../../common/lock';
import * as definitions from '../../workflows/lib/definitions';
import { appLock } from '../../workflows/lock';

const source = (file: string) => readFileSync(path.join(__dirname, '../..', file), 'utf8');
const imports = (file: string) => [...source(file).matchAll(/^import[^;]*?from '([^']+)'/gms)].map((m) => m[1]);

describe('lock definitions', () => {
  it('are the ones the lock workflow handles', () => {
    expect(appLock.name).toBe(LOCK_WORKFLOW_TYPE);
    expect(acquireLockUpdate).toEqual({ type: 'update', name: definitions.acquireLockUpdate.name });
    expect(releaseLockSignal).toEqual({ type: 'signal', name: definitions.releaseLockSignal.name });
    expect(lockHolderQuery).toEqual({ type: 'query', name: definitions.lockHolderQuery.name });
  });

  it('the lock activities import no workflow code', () => {
    const found = imports('activities/lock.ts');
    expect(found).toContain('../common/lock');
    expect(found.filter((m) => m.includes('workflows') || m === '@temporalio/workflow')).toEqual([]);
  });
});
