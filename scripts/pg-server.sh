#!/usr/bin/env bash
# A plain PostgreSQL 15 server from Debian (not in a container): the "database server reachable
# by a connection string" of the backup runbooks. Listens on 127.0.0.1:$PG_SERVER_PORT only,
# password (scram) auth for the role $PG_SERVER_USER, whose password is in $PG_SERVER_PASSWORD_FILE
# (mode 0600, generated once). Data in $RUNBOOK_HOME/pg-server/data.
# Usage: pg-server.sh start|stop|status
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PG_BIN=/usr/lib/postgresql/15/bin
DATA=$RUNBOOK_HOME/pg-server/data
SOCKET_DIR=$RUNBOOK_RUN/pg-server
LOGFILE=$RUNBOOK_LOGS/pg-server.log

as_postgres() { runuser -u postgres -- "$@"; }

ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_SERVER_PORT"; }

init_cluster() {
  mkdir -p "$(dirname "$DATA")" "$(dirname "$PG_SERVER_PASSWORD_FILE")"
  if [[ ! -s $PG_SERVER_PASSWORD_FILE ]]; then
    (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$PG_SERVER_PASSWORD_FILE")
  fi
  chmod 600 "$PG_SERVER_PASSWORD_FILE"
  [[ -s $DATA/PG_VERSION ]] && return 0
  log "pg-server: initdb $DATA"
  rm -rf "$DATA"
  mkdir -p "$DATA"
  chown postgres:postgres "$DATA"
  chmod 700 "$DATA"
  local pwfile
  pwfile=$(mktemp)
  cp "$PG_SERVER_PASSWORD_FILE" "$pwfile"
  chown postgres "$pwfile"
  as_postgres "$PG_BIN/initdb" -D "$DATA" -U "$PG_SERVER_USER" --pwfile="$pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >>"$LOGFILE" 2>&1 ||
    { rm -f "$pwfile"; tail -n 20 "$LOGFILE" >&2; die "initdb failed"; }
  rm -f "$pwfile"
}

start() {
  ensure_dirs
  [[ -x $PG_BIN/postgres ]] || die "$PG_BIN/postgres missing: run scripts/install.sh (postgresql-15)"
  init_cluster
  mkdir -p "$SOCKET_DIR"
  chown postgres:postgres "$SOCKET_DIR"
  touch "$LOGFILE"
  chown postgres "$LOGFILE"
  if as_postgres "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1 && ready; then
    log "pg-server: already running on 127.0.0.1:$PG_SERVER_PORT"
    return 0
  fi
  if tcp_open 127.0.0.1 "$PG_SERVER_PORT"; then
    die "something else already listens on 127.0.0.1:$PG_SERVER_PORT"
  fi
  rm -f "$DATA/postmaster.pid"
  log "pg-server: starting on 127.0.0.1:$PG_SERVER_PORT (log: $LOGFILE)"
  as_postgres "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_SERVER_PORT -c unix_socket_directories=$SOCKET_DIR -c fsync=on" start >/dev/null ||
    { tail -n 20 "$LOGFILE" >&2; die "pg-server did not start"; }
  wait_for 30 "pg-server on 127.0.0.1:$PG_SERVER_PORT" ready || die "pg-server is not ready"
}

stop() {
  if [[ -s $DATA/postmaster.pid ]]; then
    log "pg-server: stopping"
    as_postgres "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null 2>&1 || warn "pg-server: pg_ctl stop failed"
  else
    log "pg-server: not running"
  fi
}

status() {
  if ready; then
    echo "pg-server: up on 127.0.0.1:$PG_SERVER_PORT (user $PG_SERVER_USER, password file $PG_SERVER_PASSWORD_FILE)"
  else
    echo "pg-server: down"
    return 1
  fi
}

dispatch "${1:-}" start stop status restart
