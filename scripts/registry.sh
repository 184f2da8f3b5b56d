#!/usr/bin/env bash
# Local image registry: Debian's docker-registry (distribution 2.8) on
# $REGISTRY (127.0.0.1:5000, plain HTTP: loopback registries are insecure-
# allowed by dockerd by default), storage in $RUNBOOK_HOME/registry.
# Usage: registry.sh start|stop|status
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PIDFILE=$RUNBOOK_RUN/registry.pid
LOGFILE=$RUNBOOK_LOGS/registry.log
STORAGE=$RUNBOOK_HOME/registry
CONFIG=$RUNBOOK_HOME/registry-config.yml

ping_registry() { curl -sf --max-time 2 "http://$REGISTRY/v2/" >/dev/null; }

start() {
  ensure_dirs
  if pid_alive "$PIDFILE" && ping_registry; then
    log "registry: already running (pid $(<"$PIDFILE"), http://$REGISTRY)"
    return 0
  fi
  [[ -x /usr/bin/docker-registry ]] || die "/usr/bin/docker-registry missing: run scripts/install.sh"
  if ! pid_alive "$PIDFILE"; then
    if tcp_open "${REGISTRY%:*}" "${REGISTRY##*:}"; then
      die "something else already listens on $REGISTRY (not our registry: no live pid in $PIDFILE)"
    fi
    mkdir -p "$STORAGE"
    cat >"$CONFIG" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $STORAGE
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  secret: temporal-runbooks-local-registry
  addr: $REGISTRY
  headers:
    X-Content-Type-Options: [nosniff]
YAML
    log "registry: starting on $REGISTRY (log: $LOGFILE)"
    start_daemon "$PIDFILE" "$LOGFILE" /usr/bin/docker-registry serve "$CONFIG"
  fi
  if ! wait_daemon "$PIDFILE" 30 "registry on $REGISTRY" ping_registry; then
    tail -n 20 "$LOGFILE" >&2
    die "registry did not start (log: $LOGFILE)"
  fi
  log "registry: up (http://$REGISTRY, storage $STORAGE)"
}

stop() { stop_pidfile "$PIDFILE" "registry" 15; }

status() {
  if pid_alive "$PIDFILE" && ping_registry; then
    echo "registry: running (pid $(<"$PIDFILE")), http://$REGISTRY"
  else
    echo "registry: not running"
    return 1
  fi
}

dispatch "${1:-}" start stop status restart
