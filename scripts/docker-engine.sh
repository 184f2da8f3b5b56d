#!/usr/bin/env bash
# Our own Docker engine (Debian's dockerd 20.10, API 1.41) in the background:
#   data root  $RUNBOOK_HOME/docker   (images, build cache, volumes: persistent)
#   exec root  $RUNBOOK_RUN/docker-exec
#   socket     $DOCKER_SOCK           (DOCKER_HOST=unix://$DOCKER_SOCK)
#   pid file   $RUNBOOK_RUN/docker.pid, log $RUNBOOK_HOME/logs/dockerd.log
# Usage: docker-engine.sh start|stop|status|verify
#   verify: runs a container on the default bridge with -p 127.0.0.1:X:8080
#           (needs the demo-app image from images.sh) and checks it answers.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PIDFILE=$RUNBOOK_RUN/docker.pid
LOGFILE=$RUNBOOK_LOGS/dockerd.log
DATA_ROOT=$RUNBOOK_HOME/docker
EXEC_ROOT=$RUNBOOK_RUN/docker-exec
CONFIG=$RUNBOOK_HOME/docker-daemon.json

ping_engine() { curl -sf --max-time 2 --unix-socket "$DOCKER_SOCK" http://docker/_ping | grep -qx OK; }

start() {
  ensure_dirs
  if pid_alive "$PIDFILE" && ping_engine; then
    log "docker engine: already running (pid $(<"$PIDFILE"), $DOCKER_HOST)"
    return 0
  fi
  [[ -x /usr/sbin/dockerd ]] || die "/usr/sbin/dockerd missing: run scripts/install.sh (docker.io)"
  [[ -x $DOCKER_BIN ]] || die "$DOCKER_BIN missing: run scripts/install.sh (docker.io)"
  if ! pid_alive "$PIDFILE"; then
    rm -f "$PIDFILE" "$DOCKER_SOCK"
    # Stale pid files of a dead dockerd/containerd (a killed daemon can stay a
    # zombie for a while, and dockerd then refuses to start).
    local f
    for f in "$RUNBOOK_RUN/dockerd.pid" "$EXEC_ROOT/containerd/containerd.pid"; do
      pid_alive "$f" || rm -f "$f"
    done
    mkdir -p "$DATA_ROOT" "$EXEC_ROOT"
    # Own config file so /etc/docker/daemon.json (if any) does not apply.
    cat >"$CONFIG" <<'JSON'
{
  "log-driver": "json-file",
  "log-opts": { "max-size": "20m", "max-file": "3" }
}
JSON
    log "docker engine: starting dockerd (log: $LOGFILE)"
    # dockerd refuses a --pidfile that holds a live pid, so it gets its own.
    start_daemon "$PIDFILE" "$LOGFILE" /usr/sbin/dockerd \
      --config-file "$CONFIG" \
      --data-root "$DATA_ROOT" \
      --exec-root "$EXEC_ROOT" \
      --pidfile "$RUNBOOK_RUN/dockerd.pid" \
      --host "unix://$DOCKER_SOCK"
  fi
  if ! wait_daemon "$PIDFILE" 60 "dockerd to answer on $DOCKER_SOCK" ping_engine; then
    tail -n 30 "$LOGFILE" >&2
    die "docker engine did not start (log: $LOGFILE)"
  fi
  docker_cmd info >/dev/null 2>&1 || die "docker info fails against $DOCKER_HOST"
  log "docker engine: up ($(docker_cmd version -f 'engine {{.Server.Version}}, API {{.Server.APIVersion}}'), $DOCKER_HOST)"
}

stop() {
  # dockerd stops its containers on SIGTERM (default 15 s per container).
  stop_pidfile "$PIDFILE" "docker engine" 60
  rm -f "$DOCKER_SOCK"
}

status() {
  if pid_alive "$PIDFILE" && ping_engine; then
    echo "docker engine: running (pid $(<"$PIDFILE")), DOCKER_HOST=$DOCKER_HOST"
  else
    echo "docker engine: not running"
    return 1
  fi
}

verify() {
  ping_engine || die "docker engine not running"
  local image=$REGISTRY/demo-app:v1 name=runbook-verify-$$ port=18999
  docker_cmd image inspect "$image" >/dev/null 2>&1 || die "verify needs $image (run scripts/images.sh)"
  docker_cmd rm -f "$name" >/dev/null 2>&1 || true
  docker_cmd run -d --name "$name" -p "127.0.0.1:$port:8080" "$image" >/dev/null
  local ok=0
  if wait_for 20 "published port 127.0.0.1:$port" curl -sf --max-time 2 "http://127.0.0.1:$port/health"; then
    ok=1
  fi
  local ip
  ip=$(docker_cmd inspect -f '{{.NetworkSettings.Networks.bridge.IPAddress}}' "$name" 2>/dev/null || true)
  docker_cmd rm -f "$name" >/dev/null 2>&1 || true
  ((ok)) || die "container on the bridge (ip ${ip:-?}) not reachable through -p 127.0.0.1:$port:8080"
  log "docker engine: verified bridge networking (container ip $ip) and -p 127.0.0.1:$port:8080"
}

dispatch "${1:-}" start stop status restart verify
