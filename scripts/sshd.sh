#!/usr/bin/env bash
# A second OpenSSH server on 127.0.0.1:$SSH_PORT that plays the "remote host"
# of the runbooks (root login with $SSH_KEY only; DOCKER_HOST points at our
# engine; TCP and unix-socket forwarding allowed, so one SSH connection can
# carry the Docker API: ssh -L /local.sock:$DOCKER_SOCK).
# Files under $RUNBOOK_HOME/ssh: id_ed25519[.pub] (client key), authorized_keys,
# ssh_host_ed25519_key[.pub], host_fingerprint ("SHA256:..."), known_hosts,
# sshd_config.
# Usage: sshd.sh start|stop|status|verify
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PIDFILE=$RUNBOOK_RUN/sshd.pid
LOGFILE=$RUNBOOK_LOGS/sshd.log
CONFIG=$SSH_DIR/sshd_config

ssh_opts() {
  printf '%s\n' -i "$SSH_KEY" -p "$SSH_PORT" \
    -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 \
    -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$SSH_KNOWN_HOSTS" \
    -o LogLevel=ERROR
}

setup_files() {
  mkdir -p "$SSH_DIR" /run/sshd
  chmod 700 "$SSH_DIR"
  if [[ ! -s $SSH_KEY ]]; then
    log "sshd: generating client key $SSH_KEY"
    rm -f "$SSH_KEY" "$SSH_KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C temporal-runbooks-client -f "$SSH_KEY"
  fi
  if [[ ! -s $SSH_HOST_KEY ]]; then
    log "sshd: generating host key $SSH_HOST_KEY"
    rm -f "$SSH_HOST_KEY" "$SSH_HOST_KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C temporal-runbooks-host -f "$SSH_HOST_KEY"
  fi
  [[ -s $SSH_KEY.pub ]] || ssh-keygen -y -f "$SSH_KEY" >"$SSH_KEY.pub"
  [[ -s $SSH_HOST_KEY.pub ]] || ssh-keygen -y -f "$SSH_HOST_KEY" >"$SSH_HOST_KEY.pub"
  chmod 600 "$SSH_KEY" "$SSH_HOST_KEY"

  # Derived files: rewritten every time (cheap, always consistent).
  local tmp
  tmp=$(mktemp "$SSH_DIR/.tmp.XXXXXX")
  cat "$SSH_KEY.pub" >"$tmp" && mv "$tmp" "$SSH_DIR/authorized_keys"
  ssh-keygen -lf "$SSH_HOST_KEY.pub" | awk '{print $2}' >"$SSH_HOST_FINGERPRINT_FILE"
  [[ $(<"$SSH_HOST_FINGERPRINT_FILE") == SHA256:* ]] || die "could not compute the host key fingerprint"
  printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cut -d' ' -f1,2 "$SSH_HOST_KEY.pub")" >"$SSH_KNOWN_HOSTS"

  sshd_config_text 'scripts/sshd.sh: test "remote host" for the runbooks' "$SSH_PORT" 127.0.0.1 "$SSH_HOST_KEY" "$PIDFILE" "$SSH_DIR/authorized_keys" "unix://$DOCKER_SOCK" >"$CONFIG"
}

running() { pid_alive "$PIDFILE" && tcp_open 127.0.0.1 "$SSH_PORT"; }

start() {
  ensure_dirs
  setup_files
  if running; then
    log "sshd: already running (pid $(<"$PIDFILE"), 127.0.0.1:$SSH_PORT)"
    return 0
  fi
  [[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd missing: run scripts/install.sh (openssh-server)"
  if ! pid_alive "$PIDFILE"; then
    if tcp_open 127.0.0.1 "$SSH_PORT"; then
      die "something else already listens on 127.0.0.1:$SSH_PORT (not our sshd: no live pid in $PIDFILE)"
    fi
    /usr/sbin/sshd -t -f "$CONFIG" || die "sshd rejects $CONFIG"
    log "sshd: starting on 127.0.0.1:$SSH_PORT (log: $LOGFILE)"
    # -D: stay in the foreground (our pid file), -e: log to stderr (the log file).
    start_daemon "$PIDFILE" "$LOGFILE" /usr/sbin/sshd -D -e -f "$CONFIG"
  fi
  if ! wait_daemon "$PIDFILE" 15 "sshd on 127.0.0.1:$SSH_PORT" tcp_open 127.0.0.1 "$SSH_PORT"; then
    tail -n 20 "$LOGFILE" >&2
    die "sshd did not start (log: $LOGFILE)"
  fi
  mapfile -t opts < <(ssh_opts)
  ssh "${opts[@]}" root@127.0.0.1 true || die "ssh login with $SSH_KEY to 127.0.0.1:$SSH_PORT fails"
  log "sshd: up (root@127.0.0.1:$SSH_PORT, host key $(<"$SSH_HOST_FINGERPRINT_FILE"))"
  if curl -sf --max-time 2 --unix-socket "$DOCKER_SOCK" http://docker/_ping >/dev/null; then
    verify
  fi
}

# Full check: docker over ssh, and the engine socket forwarded over ssh.
verify() {
  mapfile -t opts < <(ssh_opts)
  local v
  v=$(ssh "${opts[@]}" root@127.0.0.1 docker version --format '{{.Server.Version}}') ||
    die "'ssh root@127.0.0.1 -p $SSH_PORT docker version' fails (is the engine up?)"
  local sock pid ok=0
  sock=$(mktemp -u "$RUNBOOK_RUN/verify-fwd.XXXXXX.sock")
  ssh "${opts[@]}" -N -o ExitOnForwardFailure=yes -L "$sock:$DOCKER_SOCK" root@127.0.0.1 &
  pid=$!
  if wait_for 10 "forwarded socket $sock" test -S "$sock" &&
    [[ $(curl -s --max-time 5 --unix-socket "$sock" http://docker/_ping) == OK ]]; then
    ok=1
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$sock"
  ((ok)) || die "OpenSSH streamlocal forwarding of $DOCKER_SOCK does not work"
  log "sshd: verified 'docker version' over ssh (engine $v) and -L socket forwarding of the engine"
}

stop() { stop_pidfile "$PIDFILE" "sshd" 10; }

status() {
  if running; then
    echo "sshd: running (pid $(<"$PIDFILE")), root@127.0.0.1:$SSH_PORT key $SSH_KEY"
  else
    echo "sshd: not running"
    return 1
  fi
}

dispatch "${1:-}" start stop status restart verify
