// Every workflow type the worker registers. One file per runbook.
export { firstDeploy } from './firstDeploy';
export { appLock } from './lock';
export { nightlyBackup } from './nightlyBackup';
export { restoreBackup } from './restoreBackup';
export { rollingUpdate } from './rollingUpdate';
