#!/usr/bin/env bash
# S3-compatible server for the storage tests: moto in server mode (from the pinned PyPI
# wheels that install.sh puts in $S3_SERVER_HOME), plain HTTP on $S3_ADDRESS
# ($S3_ENDPOINT), any credentials accepted, path-style buckets. Its data lives in memory:
# a restart empties it (tests create a bucket per run). The same server answers Route 53
# requests (SigV4-signed for the route53 service; see lib.sh) for the DNS tests.
# Usage: s3.sh start|stop|status
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PIDFILE=$RUNBOOK_RUN/s3.pid
LOGFILE=$RUNBOOK_LOGS/s3.log
IP=${S3_ADDRESS%:*}
PORT=${S3_ADDRESS##*:}

# ListBuckets answers: the S3 API itself is up, not just the port.
healthy() { curl -sf --noproxy '*' --max-time 3 "$S3_ENDPOINT/" | grep -q ListAllMyBucketsResult; }

start() {
  ensure_dirs
  [[ -x $S3_SERVER_BIN ]] || die "$S3_SERVER_BIN missing: run scripts/install.sh"
  if pid_alive "$PIDFILE" && healthy; then
    log "s3: already running (pid $(<"$PIDFILE"), $S3_ENDPOINT)"
    return 0
  fi
  if ! pid_alive "$PIDFILE"; then
    if tcp_open "$IP" "$PORT"; then
      die "something else already listens on $S3_ADDRESS (not our S3 server: no live pid in $PIDFILE)"
    fi
    log "s3: starting moto on $S3_ENDPOINT (log: $LOGFILE)"
    # env execs moto_server, so the pid file holds the server's pid.
    start_daemon "$PIDFILE" "$LOGFILE" env PYTHONPATH="$S3_SERVER_HOME" PYTHONDONTWRITEBYTECODE=1 \
      "$S3_SERVER_BIN" -H "$IP" -p "$PORT"
  fi
  if ! wait_daemon "$PIDFILE" 30 "S3 server on $S3_ENDPOINT" healthy; then
    tail -n 30 "$LOGFILE" >&2
    pid_alive "$PIDFILE" || die "the S3 server exited (log: $LOGFILE)"
    die "the S3 server does not answer on $S3_ENDPOINT (log: $LOGFILE)"
  fi
  log "s3: up ($S3_ENDPOINT, moto, pid $(<"$PIDFILE"))"
}

stop() { stop_pidfile "$PIDFILE" "s3" 10; }

status() {
  if pid_alive "$PIDFILE" && healthy; then
    echo "s3: running (pid $(<"$PIDFILE")), $S3_ENDPOINT"
  else
    echo "s3: not running"
    return 1
  fi
}

dispatch "${1:-}" start stop status restart
