#!/usr/bin/env bash
# The README's demo command: set up this machine, start the Temporal dev server (UI on
# 127.0.0.1:8233) and a runbook worker, then deploy the demo app with the firstDeploy runbook.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

bash scripts/services.sh up
use_node
log "node $(node --version) ($(command -v node)), npm $(npm --version)"
npm run --silent build

DEMO_DIR=$RUNBOOK_HOME/demo
mkdir -p "$DEMO_DIR"
chmod 700 "$DEMO_DIR"
# Demo secrets: made once, on this machine, never in git or in any workflow history.
if [[ ! -s $DEMO_DIR/postgres.env ]]; then
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  umask 077
  printf 'POSTGRES_PASSWORD=%s\n' "$password" >"$DEMO_DIR/postgres.env"
  printf 'DATABASE_URL=postgres://demo:%s@postgres:5432/demo\nSECRET_KEY=%s\n' "$password" "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" >"$DEMO_DIR/demo.env"
  head -c 18 /dev/urandom | base64 >"$DEMO_DIR/api-token"
  umask 022
fi
# The database password alone, for the backup runbook's pg_dump/psql (from the env file above).
if [[ ! -s $DEMO_DIR/postgres-password ]]; then
  (umask 077; sed -n 's/^POSTGRES_PASSWORD=//p' "$DEMO_DIR/postgres.env" >"$DEMO_DIR/postgres-password")
fi
fingerprint=$(<"$SSH_HOST_FINGERPRINT_FILE")
sed -e "s|\${DOCKER_SOCK}|$DOCKER_SOCK|g" -e "s|\${SSH_PORT}|$SSH_PORT|g" -e "s|\${SSH_KEY}|$SSH_KEY|g" \
    -e "s|\${SSH_HOST_FINGERPRINT}|$fingerprint|g" -e "s|\${DEMO_DIR}|$DEMO_DIR|g" \
    examples/inventory.yaml >"$DEMO_DIR/inventory.yaml"

# The worker, restarted so it runs this build.
export TEMPORAL_ADDRESS RUNBOOK_INVENTORY=$DEMO_DIR/inventory.yaml
stop_pidfile "$RUNBOOK_RUN/worker.pid" "runbook worker"
start_daemon "$RUNBOOK_RUN/worker.pid" "$RUNBOOK_LOGS/worker.log" node dist/workers/main.js
wait_for 30 "the runbook worker" grep -q 'runbook worker:' "$RUNBOOK_LOGS/worker.log" || die "worker did not start; see $RUNBOOK_LOGS/worker.log"

runbook() { node dist/client/cli.js "$@"; }
echo
echo "== runbook deploy demo --env production --dry-run"
runbook deploy demo --env production --dry-run
echo
echo "== runbook deploy demo --env production"
runbook deploy demo --env production
echo
echo "== curl http://127.0.0.1:8088/version  →  $(curl -fsS http://127.0.0.1:8088/version)"
echo
echo "== runbook schedule backup demo --env production   (nightly at 02:00 UTC, overlap SKIP)"
runbook schedule backup demo --env production
echo
echo "== runbook backup demo --env production   (now, through the schedule: dump, restore drill, archives, retention)"
runbook backup demo --env production
echo
echo "== runbook backups demo --env production"
runbook backups demo --env production
echo
echo "== runbook history demo --env production   (the audit trail)"
runbook history demo --env production
cat <<TXT

The demo app (postgres + 2 replicas + nginx) runs on the local Docker engine ($DOCKER_HOST):
  app through nginx:   http://127.0.0.1:8088/
  Temporal Web UI:     http://127.0.0.1:$TEMPORAL_UI_PORT/namespaces/default/workflows
  worker log:          $RUNBOOK_LOGS/worker.log

Restore the newest verified backup (gated: approve it from the UI or the CLI):
  scripts/runbook restore demo --env production --detach
  scripts/runbook approve restoreBackup/demo/production --gate restore --by alice
  (the database as it was before is kept for 7 days; drop it sooner:
   scripts/runbook restore demo --env production --release --by alice)

Try an approval gate: deploy the staging environment (a Docker host reached over SSH) with a
go-live approval, then approve it from the UI or the CLI:
  scripts/runbook deploy demo --env staging --go-live-approval --detach
  scripts/runbook list --awaiting-approval
  UI: open firstDeploy/demo/staging → "Send a Signal" → name "approve",
      input {"gate": "go-live", "by": "alice"}
  CLI: node dist/client/cli.js approve firstDeploy/demo/staging --gate go-live --by alice
       scripts/runbook watch firstDeploy/demo/staging
TXT
