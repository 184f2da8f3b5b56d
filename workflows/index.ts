// Every workflow type the worker registers. One file per runbook.
export { firstDeploy } from './firstDeploy';
export { appLock } from './lock';
