// Every workflow type the worker registers. One file per runbook.
export { firstDeploy } from './firstDeploy';
export { issueCertificate } from './issueCertificate';
export { appLock } from './lock';
export { nightlyBackup } from './nightlyBackup';
export { renewCertificates } from './renewCertificates';
export { releasePreviousDatabase, restoreBackup } from './restoreBackup';
export { restoreArchive } from './restoreArchive';
export { backupCatalog } from './backupCatalog';
export { dnsCutover } from './dnsCutover';
export { rollingUpdate } from './rollingUpdate';
export { maintenanceMode } from './maintenanceMode';
export { housekeeping } from './housekeeping';
export { stopApp } from './stopApp';
export { updateDependency } from './updateDependency';
export { updateFromRegistry } from './updateFromRegistry';
