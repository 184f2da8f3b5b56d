#!/usr/bin/env bash
# Installs and starts everything the tests and the demo need (idempotent;
# a warm re-run takes seconds):
#   install.sh (unless SKIP_INSTALL=1) -> docker engine -> registry -> images
#   -> sshd -> host 2 (second engine, over ssh) -> temporal dev server -> PostgreSQL server
#   -> S3-compatible server -> bind9 (authoritative DNS) -> pebble (ACME test server)
# Usage: services.sh up|down|status
#   up      install + start all, then print a one-line summary on stdout
#   down    stop all (reverse order); state in $RUNBOOK_HOME is kept
#   status  one line per service; exit 1 if any is down
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"

up() {
  local t0=$SECONDS
  [[ $(id -u) == 0 ]] || die "services.sh must run as root"
  if [[ ${SKIP_INSTALL:-0} == 1 ]]; then
    log "install: skipped (SKIP_INSTALL=1)"
  else
    bash "$HERE/install.sh"
  fi
  local engine_was_up=1
  bash "$HERE/docker-engine.sh" status >/dev/null 2>&1 || engine_was_up=0
  bash "$HERE/docker-engine.sh" start
  bash "$HERE/registry.sh" start
  bash "$HERE/images.sh"
  # Fresh engine: prove bridge networking and -p 127.0.0.1:X:Y work.
  if ((engine_was_up == 0)) || [[ ${VERIFY:-0} == 1 ]]; then
    bash "$HERE/docker-engine.sh" verify
  fi
  bash "$HERE/sshd.sh" start
  bash "$HERE/host2.sh" start
  bash "$HERE/temporal.sh" start
  bash "$HERE/pg-server.sh" start
  bash "$HERE/s3.sh" start
  bash "$HERE/bind9.sh" start
  bash "$HERE/pebble.sh" start

  local engine images
  engine=$(docker_cmd version -f '{{.Server.Version}} API {{.Server.APIVersion}}' 2>/dev/null || echo '?')
  images=$(curl -sf "http://$REGISTRY/v2/_catalog" | tr -d '{}"[]' | sed 's/repositories://')
  printf 'services up in %ss: docker %s (engine %s) | registry %s (%s) | sshd root@127.0.0.1:%s (key %s) | temporal %s, UI http://127.0.0.1:%s | dns %s (%s) | acme %s\n' \
    "$((SECONDS - t0))" "$DOCKER_HOST" "$engine" "$REGISTRY" "$images" "$SSH_PORT" "$SSH_KEY" \
    "$TEMPORAL_ADDRESS" "$TEMPORAL_UI_PORT" "$BIND9_ADDRESS" "$BIND9_ZONE" "$PEBBLE_DIRECTORY_URL"
}

down() {
  bash "$HERE/pebble.sh" stop
  bash "$HERE/bind9.sh" stop
  bash "$HERE/s3.sh" stop
  bash "$HERE/pg-server.sh" stop
  bash "$HERE/temporal.sh" stop
  bash "$HERE/host2.sh" stop
  bash "$HERE/sshd.sh" stop
  bash "$HERE/registry.sh" stop
  bash "$HERE/docker-engine.sh" stop
  echo "services down (state kept in $RUNBOOK_HOME)"
}

status() {
  local rc=0 s
  for s in docker-engine registry sshd host2 temporal pg-server s3 bind9 pebble; do
    bash "$HERE/$s.sh" status || rc=1
  done
  return $rc
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
