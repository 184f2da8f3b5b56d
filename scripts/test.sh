#!/usr/bin/env bash
# The README's test command (`npm test`): set up this machine (idempotent), build, then run every
# test layer: unit, workflows (time-skipping server), integration (real engine, sshd, registry),
# e2e (dev server + worker + CLI). Extra arguments go to jest, e.g. `npm test -- --selectProjects unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

bash scripts/services.sh up
use_node
log "node $(node --version) ($(command -v node)), npm $(npm --version)"
npm run --silent build

export RUNBOOK_HOME TEMPORAL_CLI TEMPORAL_TEST_SERVER_PATH TEMPORAL_ADDRESS
mkdir -p .state
status=0
npx jest --ci --runInBand --json --outputFile=.state/jest-results.json "$@" || status=$?
# One closing line in the plain form CI reads: "N passed, N failed".
node -e '
  const r = require("./.state/jest-results.json");
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
' || true
exit "$status"
