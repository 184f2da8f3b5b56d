#!/usr/bin/env bash
# Installs and starts everything the tests and the demo need (idempotent;
# a warm re-run takes seconds):
#   install.sh (unless SKIP_INSTALL=1) -> docker engine -> registry -> images
#   -> sshd -> host 2 (second engine, over ssh) -> temporal dev server -> PostgreSQL server
#   -> S3-compatible server -> bind9 (authoritative DNS) -> pebble (ACME test server)
# Usage: services.sh up|down|status|reset
#   up      install + start all, print how long each step took and a one-line summary
#   down    stop all (reverse order), the demo's worker too; state in $RUNBOOK_HOME is kept
#   status  one line per service; exit 1 if any is down
#   reset   a fresh machine in one step: down, then remove every state and runtime directory
#           ($RUNBOOK_HOME: Docker data roots, registry storage, keys, generated configs, the
#           Temporal database, the installed Node and PyPI tools; $RUNBOOK_RUN; host 2's network
#           namespace) and the work tree's node_modules, dist and .state. Debian packages and the
#           apt, pip and npm download caches stay. `up` afterwards is a cold start (.ci/run does this).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"

STEP_TIMES=()
# step NAME CMD...: runs one set-up step and records its time; a failure names the step (the
# step's own script has printed the failing command, its line and its log).
step() {
  local name=$1; shift
  local t0=$SECONDS rc=0
  "$@" || rc=$?
  if ((rc != 0)); then
    trap - ERR
    printf '[%s] ERROR: set-up step "%s" failed after %ss (exit code %s): %s\n' \
      "$(date +%H:%M:%S)" "$name" "$((SECONDS - t0))" "$rc" "${*#"$HERE"/}" >&2
    printf '  logs: %s; a fresh start: bash scripts/services.sh reset && bash scripts/services.sh up\n' "$RUNBOOK_LOGS" >&2
    exit "$rc"
  fi
  STEP_TIMES+=("$name $((SECONDS - t0))s")
}

up() {
  local t0=$SECONDS
  [[ $(id -u) == 0 ]] || die "services.sh must run as root"
  if [[ ${SKIP_INSTALL:-0} == 1 ]]; then
    log "install: skipped (SKIP_INSTALL=1)"
  else
    step install bash "$HERE/install.sh"
  fi
  local engine_was_up=1
  bash "$HERE/docker-engine.sh" status >/dev/null 2>&1 || engine_was_up=0
  step "docker engine" bash "$HERE/docker-engine.sh" start
  step registry bash "$HERE/registry.sh" start
  step images bash "$HERE/images.sh"
  # Fresh engine: prove bridge networking and -p 127.0.0.1:X:Y work.
  if ((engine_was_up == 0)) || [[ ${VERIFY:-0} == 1 ]]; then
    step "engine check" bash "$HERE/docker-engine.sh" verify
  fi
  step sshd bash "$HERE/sshd.sh" start
  step "host 2" bash "$HERE/host2.sh" start
  step temporal bash "$HERE/temporal.sh" start
  step "pg server" bash "$HERE/pg-server.sh" start
  step s3 bash "$HERE/s3.sh" start
  step bind9 bash "$HERE/bind9.sh" start
  step pebble bash "$HERE/pebble.sh" start

  local engine images node_version
  engine=$(docker_cmd version -f '{{.Server.Version}} API {{.Server.APIVersion}}' 2>/dev/null || echo '?')
  images=$(curl -sf "http://$REGISTRY/v2/_catalog" | tr -d '{}"[]' | sed 's/repositories://')
  node_version=$(use_node && node --version)
  local IFS=','
  printf 'set-up steps: %s\n' "${STEP_TIMES[*]}" | sed 's/,/, /g'
  printf 'services up in %ss: node %s | docker %s (engine %s) | registry %s (%s) | sshd root@127.0.0.1:%s (key %s) | temporal %s, UI http://127.0.0.1:%s | dns %s (%s) | acme %s\n' \
    "$((SECONDS - t0))" "$node_version" "$DOCKER_HOST" "$engine" "$REGISTRY" "$images" "$SSH_PORT" "$SSH_KEY" \
    "$TEMPORAL_ADDRESS" "$TEMPORAL_UI_PORT" "$BIND9_ADDRESS" "$BIND9_ZONE" "$PEBBLE_DIRECTORY_URL"
}

down() {
  # The demo's worker (scripts/demo.sh) first: it talks to everything below.
  stop_pidfile "$RUNBOOK_RUN/worker.pid" "runbook worker"
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

reset() {
  [[ $(id -u) == 0 ]] || die "services.sh must run as root"
  local t0=$SECONDS
  log "reset: stopping every service"
  down >/dev/null
  # Whatever still runs from the state directories (a daemon whose pid file was lost).
  # Never this script or the shells that started it (their command lines may name these paths).
  local pids ancestors=" " p=$$
  while [[ $p =~ ^[0-9]+$ ]] && ((p > 1)); do
    ancestors+="$p "
    p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null || true)
  done
  pids=$(pgrep -f -- "$RUNBOOK_HOME/|$RUNBOOK_RUN/" | while read -r p; do [[ $ancestors == *" $p "* ]] || echo "$p"; done || true)
  if [[ -n $pids ]]; then
    warn "reset: stopping leftover processes: $(echo "$pids" | tr '\n' ' ')"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    sleep 2
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
  # Mounts a killed engine left behind (overlay layers, netns files), deepest first.
  local mounts
  mounts=$(findmnt -rn -o TARGET | grep -E "^($RUNBOOK_HOME|$RUNBOOK_RUN)(/|$)" | sort -r || true)
  if [[ -n $mounts ]]; then
    while read -r m; do umount -l "$m" 2>/dev/null || true; done <<<"$mounts"
  fi
  ip netns del "$HOST2_NETNS" 2>/dev/null || true
  ip link del dev "$HOST2_VETH" 2>/dev/null || true
  log "reset: removing $RUNBOOK_HOME, $RUNBOOK_RUN and $RUNBOOK_REPO/{node_modules,dist,.state}"
  rm -rf "$RUNBOOK_HOME" "$RUNBOOK_RUN" "$RUNBOOK_REPO/node_modules" "$RUNBOOK_REPO/dist" "$RUNBOOK_REPO/.state"
  [[ ! -e $RUNBOOK_HOME && ! -e $RUNBOOK_RUN ]] || die "reset: could not remove $RUNBOOK_HOME or $RUNBOOK_RUN"
  log "reset: done in $((SECONDS - t0))s; the next 'services.sh up' (or the README's commands) starts cold"
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
  reset) reset ;;
  *) echo "usage: $0 up|down|status|reset" >&2; exit 2 ;;
esac
