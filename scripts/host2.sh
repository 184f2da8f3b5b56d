#!/usr/bin/env bash
# "Host 2": a second, independent Docker engine for the multi-host tests, reached over SSH.
# It lives in its own network namespace $HOST2_NETNS (own interfaces, routes and iptables, so
# its docker0 and iptables chains do not fight engine 1's), joined to the root namespace by a
# veth pair: $HOST2_VETH $HOST2_ROOT_ADDRESS (root side) <-> eth0 $HOST2_ADDRESS (host 2).
#   dockerd   in the namespace: data root $HOST2_HOME/docker, exec root $RUNBOOK_RUN/docker2-exec,
#             socket $HOST2_DOCKER_SOCK, bridge 10.202.0.1/24, user networks from 10.203.0.0/16,
#             pid file $RUNBOOK_RUN/docker2.pid, log $RUNBOOK_LOGS/dockerd2.log.
#             Ports its containers publish on $HOST2_ADDRESS (or 0.0.0.0) are reached from the
#             root namespace at $HOST2_ADDRESS:PORT.
#   registry  127.0.0.1:5000 inside the namespace is forwarded (socat) to $HOST2_ROOT_ADDRESS:5000,
#             which a second socat in the root namespace forwards to the registry on $REGISTRY:
#             host 2 pulls the same image names as engine 1, lazily (nothing is pre-pulled).
#   sshd      in the namespace on $HOST2_ADDRESS:$HOST2_SSH_PORT: root login with $SSH_KEY, its
#             own host key (fingerprint in $HOST2_SSH_FINGERPRINT_FILE), DOCKER_HOST=engine 2,
#             unix-socket forwarding allowed (ssh -L /local.sock:$HOST2_DOCKER_SOCK).
# The namespace lives in /run (gone after a reboot): start recreates it; stop stops the daemons
# (containers stop with dockerd, data is kept) and deletes the namespace.
# Usage: host2.sh start|stop|status|restart|verify
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NETNS_FILE=/run/netns/$HOST2_NETNS
DOCKER_PIDFILE=$RUNBOOK_RUN/docker2.pid
DOCKER_LOG=$RUNBOOK_LOGS/dockerd2.log
DATA_ROOT=$HOST2_HOME/docker
EXEC_ROOT=$RUNBOOK_RUN/docker2-exec
DOCKER_CONFIG=$HOST2_HOME/docker-daemon.json
SSHD_PIDFILE=$RUNBOOK_RUN/sshd2.pid
SSHD_LOG=$RUNBOOK_LOGS/sshd2.log
SSH2_DIR=$(dirname "$HOST2_SSH_HOST_KEY")
SSHD_CONFIG=$SSH2_DIR/sshd_config
# Registry forwarders: root namespace $HOST2_ROOT_ADDRESS:5000 -> $REGISTRY, and inside the
# namespace 127.0.0.1:5000 -> $HOST2_ROOT_ADDRESS:5000.
REGISTRY_PORT=${REGISTRY##*:}
FWD_ROOT_PIDFILE=$RUNBOOK_RUN/host2-registry-root.pid
FWD_NS_PIDFILE=$RUNBOOK_RUN/host2-registry-ns.pid
FWD_LOG=$RUNBOOK_LOGS/host2-registry-forward.log

# in_ns CMD...: exec CMD (same pid) in the network namespace, staying in the root mount
# namespace. Not `ip netns exec`: that also gives CMD a private mount namespace with a fresh
# /sys, which hides the cgroup hierarchies mounted under /sys/fs/cgroup (dockerd then fails
# with "Devices cgroup isn't mounted"). The daemons are started the same way (nsenter).
in_ns() { nsenter "--net=$NETNS_FILE" -- "$@"; }
# spawn PIDFILE LOGFILE CMD...: start_daemon without the lock's fd (a daemon holding it would
# hold the lock for its whole life).
spawn() { start_daemon "$@" 9>&-; }
docker2() { DOCKER_HOST=$HOST2_DOCKER_HOST "$DOCKER_BIN" "$@"; }

ssh2_opts() {
  printf '%s\n' -i "$SSH_KEY" -p "$HOST2_SSH_PORT" \
    -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 \
    -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$HOST2_SSH_KNOWN_HOSTS" \
    -o LogLevel=ERROR
}

# put FILE CONTENT: writes CONTENT (and a newline) to FILE unless it holds that already, and sets
# PUT_WROTE to 1 when it wrote, else 0. It always returns 0 (the scripts run under set -e).
put() {
  PUT_WROTE=0
  [[ -f $1 && $(<"$1") == "$2" ]] && return 0
  local tmp
  tmp=$(mktemp "$(dirname "$1")/.tmp.XXXXXX")
  printf '%s\n' "$2" >"$tmp"
  mv "$tmp" "$1"
  PUT_WROTE=1
}

# ------------------------------------------------------------------ checks --
# The namespace exists and is wired: both veth ends up with their addresses.
netns_ok() {
  [[ -e $NETNS_FILE ]] || return 1
  ip -4 -o addr show dev "$HOST2_VETH" up 2>/dev/null | grep -q " $HOST2_ROOT_ADDRESS/" || return 1
  in_ns ip -4 -o addr show dev eth0 up 2>/dev/null | grep -q " $HOST2_ADDRESS/" || return 1
  in_ns ip -o link show dev lo 2>/dev/null | grep -q 'UP'
}

# pid_in_ns PIDFILE: the daemon in PIDFILE runs in (this instance of) the namespace.
pid_in_ns() {
  local ns_ino pid_ino
  ns_ino=$(stat -L -c %i "$NETNS_FILE" 2>/dev/null) || return 1
  pid_ino=$(stat -L -c %i "/proc/$(<"$1")/ns/net" 2>/dev/null) || return 1
  [[ $ns_ino == "$pid_ino" ]]
}
ns_daemon_alive() { pid_alive "$1" && pid_in_ns "$1"; }

ping_engine2() { curl -sf --max-time 2 --unix-socket "$HOST2_DOCKER_SOCK" http://docker/_ping | grep -qx OK; }
engine2_running() { ns_daemon_alive "$DOCKER_PIDFILE" && ping_engine2; }
sshd2_running() { ns_daemon_alive "$SSHD_PIDFILE" && tcp_open "$HOST2_ADDRESS" "$HOST2_SSH_PORT"; }
fwd_root_running() { pid_alive "$FWD_ROOT_PIDFILE" && tcp_open "$HOST2_ROOT_ADDRESS" "$REGISTRY_PORT"; }
fwd_ns_running() { ns_daemon_alive "$FWD_NS_PIDFILE" && in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$REGISTRY_PORT" 2>/dev/null; }
all_running() { netns_ok && fwd_root_running && fwd_ns_running && engine2_running && sshd2_running; }

# ---------------------------------------------------------------- namespace --
create_netns() {
  # A veth left by a namespace that is gone, or still dying (its deletion is asynchronous).
  if [[ ! -e $NETNS_FILE ]] && ip link show dev "$HOST2_VETH" >/dev/null 2>&1; then
    ip link del dev "$HOST2_VETH" 2>/dev/null || true
    wait_for 10 "the old $HOST2_VETH to go" bash -c "! ip link show dev $HOST2_VETH" || die "$HOST2_VETH is still there"
  fi
  # A name left without a live namespace behind it.
  if [[ -e $NETNS_FILE ]] && ! in_ns true 2>/dev/null; then
    ip netns del "$HOST2_NETNS" 2>/dev/null || rm -f "$NETNS_FILE"
  fi
  [[ -e $NETNS_FILE ]] || ip netns add "$HOST2_NETNS"
  if ! ip link show dev "$HOST2_VETH" >/dev/null 2>&1; then
    ip link add "$HOST2_VETH" type veth peer name eth0 netns "$HOST2_NETNS"
  fi
  ip addr replace "$HOST2_ROOT_ADDRESS/$HOST2_PREFIX" dev "$HOST2_VETH"
  ip link set dev "$HOST2_VETH" up
  in_ns ip link set dev lo up
  in_ns ip addr replace "$HOST2_ADDRESS/$HOST2_PREFIX" dev eth0
  in_ns ip link set dev eth0 up
  in_ns ip route replace default via "$HOST2_ROOT_ADDRESS" dev eth0
  # dockerd enables forwarding in its namespace itself; set it anyway (per-namespace sysctl).
  in_ns sysctl -qw net.ipv4.ip_forward=1
  netns_ok || die "network namespace $HOST2_NETNS is not wired as expected"
}

# ----------------------------------------------------------------- daemons --
start_forwarders() {
  if ! fwd_root_running; then
    stop_pidfile "$FWD_ROOT_PIDFILE" "host2: registry forwarder (root)" 5 2>/dev/null
    if tcp_open "$HOST2_ROOT_ADDRESS" "$REGISTRY_PORT"; then
      die "something else listens on $HOST2_ROOT_ADDRESS:$REGISTRY_PORT (no live pid in $FWD_ROOT_PIDFILE)"
    fi
    spawn "$FWD_ROOT_PIDFILE" "$FWD_LOG" /usr/bin/socat \
      "TCP-LISTEN:$REGISTRY_PORT,bind=$HOST2_ROOT_ADDRESS,reuseaddr,fork,backlog=128" "TCP:$REGISTRY"
    wait_daemon "$FWD_ROOT_PIDFILE" 10 "registry forwarder on $HOST2_ROOT_ADDRESS:$REGISTRY_PORT" \
      tcp_open "$HOST2_ROOT_ADDRESS" "$REGISTRY_PORT" || die "registry forwarder did not start (log: $FWD_LOG)"
  fi
  if ! fwd_ns_running; then
    stop_pidfile "$FWD_NS_PIDFILE" "host2: registry forwarder (netns)" 5 2>/dev/null
    spawn "$FWD_NS_PIDFILE" "$FWD_LOG" nsenter "--net=$NETNS_FILE" -- /usr/bin/socat \
      "TCP-LISTEN:$REGISTRY_PORT,bind=127.0.0.1,reuseaddr,fork,backlog=128" "TCP:$HOST2_ROOT_ADDRESS:$REGISTRY_PORT"
    wait_daemon "$FWD_NS_PIDFILE" 10 "registry forwarder on 127.0.0.1:$REGISTRY_PORT in $HOST2_NETNS" \
      fwd_ns_running || die "registry forwarder in $HOST2_NETNS did not start (log: $FWD_LOG)"
  fi
}

start_engine2() {
  if engine2_running; then return 0; fi
  [[ -x /usr/sbin/dockerd ]] || die "/usr/sbin/dockerd missing: run scripts/install.sh (docker.io)"
  if ns_daemon_alive "$DOCKER_PIDFILE"; then
    log "host2: dockerd (pid $(<"$DOCKER_PIDFILE")) runs but does not answer yet: waiting"
    wait_engine2
    return 0
  fi
  # Running in a namespace that is gone: start afresh.
  if pid_alive "$DOCKER_PIDFILE"; then stop_pidfile "$DOCKER_PIDFILE" "host2: docker engine" 60; fi
  rm -f "$DOCKER_PIDFILE" "$HOST2_DOCKER_SOCK"
  local f
  for f in "$RUNBOOK_RUN/dockerd2.pid" "$EXEC_ROOT/containerd/containerd.pid"; do
    pid_alive "$f" || rm -f "$f"
  done
  mkdir -p "$DATA_ROOT" "$EXEC_ROOT"
  log "host2: starting dockerd in $HOST2_NETNS (log: $DOCKER_LOG)"
  # nsenter execs dockerd (same pid) in the network namespace (see in_ns).
  spawn "$DOCKER_PIDFILE" "$DOCKER_LOG" nsenter "--net=$NETNS_FILE" -- /usr/sbin/dockerd \
    --config-file "$DOCKER_CONFIG" \
    --data-root "$DATA_ROOT" \
    --exec-root "$EXEC_ROOT" \
    --pidfile "$RUNBOOK_RUN/dockerd2.pid" \
    --host "$HOST2_DOCKER_HOST"
  wait_engine2
}

# Own config (so /etc/docker/daemon.json does not apply); subnets unlike engine 1's, so a
# container address tells the engine. Own key file (not /etc/docker/key.json): the engine ID
# (`docker info`) is derived from it, and must differ from engine 1's.
write_docker_config() {
  put "$DOCKER_CONFIG" "{
  \"deprecated-key-path\": \"$HOST2_HOME/docker-key.json\",
  \"log-driver\": \"json-file\",
  \"log-opts\": { \"max-size\": \"20m\", \"max-file\": \"3\" },
  \"bip\": \"10.202.0.1/24\",
  \"default-address-pools\": [{ \"base\": \"10.203.0.0/16\", \"size\": 24 }]
}"
  if ((PUT_WROTE)); then DOCKER_CONFIG_CHANGED=1; fi
}

wait_engine2() {
  if ! wait_daemon "$DOCKER_PIDFILE" 60 "dockerd (host 2) to answer on $HOST2_DOCKER_SOCK" ping_engine2; then
    tail -n 30 "$DOCKER_LOG" >&2
    die "host 2's docker engine did not start (log: $DOCKER_LOG)"
  fi
}

setup_ssh_files() {
  mkdir -p "$SSH2_DIR" /run/sshd
  chmod 700 "$HOST2_HOME" "$SSH2_DIR"
  # The client key is scripts/sshd.sh's (made here too if host 2 starts first).
  if [[ ! -s $SSH_KEY ]]; then
    log "host2: generating client key $SSH_KEY"
    mkdir -p "$SSH_DIR" && chmod 700 "$SSH_DIR"
    rm -f "$SSH_KEY" "$SSH_KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C temporal-runbooks-client -f "$SSH_KEY"
  fi
  [[ -s $SSH_KEY.pub ]] || ssh-keygen -y -f "$SSH_KEY" >"$SSH_KEY.pub"
  if [[ ! -s $HOST2_SSH_HOST_KEY ]]; then
    log "host2: generating host key $HOST2_SSH_HOST_KEY"
    rm -f "$HOST2_SSH_HOST_KEY" "$HOST2_SSH_HOST_KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C temporal-runbooks-host2 -f "$HOST2_SSH_HOST_KEY"
  fi
  [[ -s $HOST2_SSH_HOST_KEY.pub ]] || ssh-keygen -y -f "$HOST2_SSH_HOST_KEY" >"$HOST2_SSH_HOST_KEY.pub"
  chmod 600 "$HOST2_SSH_HOST_KEY"

  # Derived files: rewritten only when they change (a warm start writes nothing).
  put "$SSH2_DIR/authorized_keys" "$(<"$SSH_KEY.pub")"
  local fp
  fp=$(ssh-keygen -lf "$HOST2_SSH_HOST_KEY.pub" | awk '{print $2}')
  [[ $fp == SHA256:* ]] || die "could not compute host 2's host key fingerprint"
  put "$HOST2_SSH_FINGERPRINT_FILE" "$fp"
  put "$HOST2_SSH_KNOWN_HOSTS" "$(printf '%s %s' "$HOST2_ADDRESS" "$(cut -d' ' -f1,2 "$HOST2_SSH_HOST_KEY.pub")")"
  put "$SSHD_CONFIG" "$(sshd_config_text "scripts/host2.sh: sshd of test host 2 (in network namespace $HOST2_NETNS)" "$HOST2_SSH_PORT" "$HOST2_ADDRESS" "$HOST2_SSH_HOST_KEY" "$SSHD_PIDFILE" "$SSH2_DIR/authorized_keys" "$HOST2_DOCKER_HOST")"
  if ((PUT_WROTE)); then SSHD_CONFIG_CHANGED=1; fi
}

start_sshd2() {
  if sshd2_running; then return 0; fi
  [[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd missing: run scripts/install.sh (openssh-server)"
  if pid_alive "$SSHD_PIDFILE"; then stop_pidfile "$SSHD_PIDFILE" "host2: sshd" 10; fi
  if tcp_open "$HOST2_ADDRESS" "$HOST2_SSH_PORT"; then
    die "something else listens on $HOST2_ADDRESS:$HOST2_SSH_PORT (no live pid in $SSHD_PIDFILE)"
  fi
  /usr/sbin/sshd -t -f "$SSHD_CONFIG" || die "sshd rejects $SSHD_CONFIG"
  log "host2: starting sshd on $HOST2_ADDRESS:$HOST2_SSH_PORT in $HOST2_NETNS (log: $SSHD_LOG)"
  spawn "$SSHD_PIDFILE" "$SSHD_LOG" nsenter "--net=$NETNS_FILE" -- /usr/sbin/sshd -D -e -f "$SSHD_CONFIG"
  if ! wait_daemon "$SSHD_PIDFILE" 15 "sshd on $HOST2_ADDRESS:$HOST2_SSH_PORT" tcp_open "$HOST2_ADDRESS" "$HOST2_SSH_PORT"; then
    tail -n 20 "$SSHD_LOG" >&2
    die "host 2's sshd did not start (log: $SSHD_LOG)"
  fi
  local opts
  mapfile -t opts < <(ssh2_opts)
  ssh "${opts[@]}" "root@$HOST2_ADDRESS" true || die "ssh login with $SSH_KEY to $HOST2_ADDRESS:$HOST2_SSH_PORT fails"
}

# stop_ns_leftovers: processes still in the namespace once its daemons are stopped (socat
# children of open connections, a containerd shim): all were started by this script.
stop_ns_leftovers() {
  [[ -e $NETNS_FILE ]] || return 0
  local pids pid i
  for i in $(seq 25); do
    mapfile -t pids < <(ip netns pids "$HOST2_NETNS" 2>/dev/null)
    ((${#pids[@]} == 0)) && return 0
    if ((i == 1)); then
      log "host2: stopping ${#pids[@]} leftover process(es) in $HOST2_NETNS: $(ps -o pid=,comm= -p "${pids[*]}" | xargs)"
      for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    elif ((i == 20)); then
      for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    fi
    sleep 0.2
  done
}

# ------------------------------------------------------------------ verbs --
# One start or stop at a time (two test set-ups starting host 2 at once would race). The lock is
# fd 9, which the daemons must not inherit (see spawn).
lock() {
  exec 9>"$RUNBOOK_RUN/host2.lock"
  flock -w 120 9 || die "another host2.sh holds $RUNBOOK_RUN/host2.lock"
}

start() {
  ensure_dirs
  lock
  mkdir -p "$HOST2_HOME"
  SSHD_CONFIG_CHANGED=0 DOCKER_CONFIG_CHANGED=0
  setup_ssh_files
  write_docker_config
  # A changed config (a newer version of this script) applies at a restart.
  if ((SSHD_CONFIG_CHANGED)) && pid_alive "$SSHD_PIDFILE"; then
    log "host2: $SSHD_CONFIG changed: restarting sshd"
    stop_pidfile "$SSHD_PIDFILE" "host2: sshd" 10
  fi
  if ((DOCKER_CONFIG_CHANGED)) && pid_alive "$DOCKER_PIDFILE"; then
    log "host2: $DOCKER_CONFIG changed: restarting dockerd"
    stop_pidfile "$DOCKER_PIDFILE" "host2: docker engine" 60
  fi
  if all_running; then
    log "host2: already running (engine pid $(<"$DOCKER_PIDFILE"), sshd root@$HOST2_ADDRESS:$HOST2_SSH_PORT, netns $HOST2_NETNS)"
    return 0
  fi
  [[ -x /usr/bin/socat ]] || die "/usr/bin/socat missing: run scripts/install.sh (socat)"
  local t0=$SECONDS
  if ! netns_ok; then
    # A namespace that is gone (a reboot, ip netns del) takes its daemons' network with it:
    # stop whatever still runs from before, then wire a fresh namespace.
    local f
    for f in "$SSHD_PIDFILE" "$DOCKER_PIDFILE" "$FWD_NS_PIDFILE" "$FWD_ROOT_PIDFILE"; do
      if pid_alive "$f"; then stop_daemons; break; fi
    done
    log "host2: creating network namespace $HOST2_NETNS ($HOST2_ROOT_ADDRESS <-> $HOST2_ADDRESS)"
    create_netns
  fi
  start_forwarders
  start_engine2
  start_sshd2
  if curl -sf --max-time 2 "http://$REGISTRY/v2/" >/dev/null &&
    ! in_ns curl -sf --max-time 5 "http://$REGISTRY/v2/" >/dev/null; then
    die "host 2 does not reach the registry through $REGISTRY inside $HOST2_NETNS"
  fi
  log "host2: up in $((SECONDS - t0))s (engine $(docker2 version -f '{{.Server.Version}}' 2>/dev/null || echo '?'), $HOST2_DOCKER_HOST; sshd root@$HOST2_ADDRESS:$HOST2_SSH_PORT, host key $(<"$HOST2_SSH_FINGERPRINT_FILE"))"
}

stop_daemons() {
  stop_pidfile "$SSHD_PIDFILE" "host2: sshd" 10
  # dockerd stops its containers on SIGTERM (default 10 s per container, in parallel).
  stop_pidfile "$DOCKER_PIDFILE" "host2: docker engine" 60
  rm -f "$HOST2_DOCKER_SOCK"
  stop_pidfile "$FWD_NS_PIDFILE" "host2: registry forwarder (netns)" 5
  stop_pidfile "$FWD_ROOT_PIDFILE" "host2: registry forwarder (root)" 5
}

stop() {
  ensure_dirs
  lock
  stop_daemons
  stop_ns_leftovers
  if [[ -e $NETNS_FILE ]]; then
    log "host2: deleting network namespace $HOST2_NETNS"
    ip netns del "$HOST2_NETNS"
  fi
  # The veth goes with the namespace, asynchronously.
  wait_for 10 "$HOST2_VETH to go" bash -c "! ip link show dev $HOST2_VETH" ||
    ip link del dev "$HOST2_VETH" 2>/dev/null || true
}

status() {
  if all_running; then
    echo "host2: running (engine pid $(<"$DOCKER_PIDFILE"), DOCKER_HOST=$HOST2_DOCKER_HOST; sshd pid $(<"$SSHD_PIDFILE"), root@$HOST2_ADDRESS:$HOST2_SSH_PORT; netns $HOST2_NETNS)"
    return 0
  fi
  local what=()
  netns_ok || what+=("netns $HOST2_NETNS")
  fwd_root_running || what+=("registry forwarder (root)")
  fwd_ns_running 2>/dev/null || what+=("registry forwarder (netns)")
  engine2_running 2>/dev/null || what+=("docker engine")
  sshd2_running 2>/dev/null || what+=("sshd")
  local IFS=,
  echo "host2: not running (down: ${what[*]})"
  return 1
}

verify() {
  all_running || die "host 2 is not running (scripts/host2.sh start)"
  local image=$REGISTRY/demo-app:v1 name=runbook-verify-host2-$$ port=18998 ok=0
  # 1. Engine 2 pulls from the registry under the same name (lazily: once, then cached).
  if ! docker2 image inspect "$image" >/dev/null 2>&1; then
    curl -sf --max-time 2 "http://$REGISTRY/v2/" >/dev/null || die "verify needs the registry (scripts/registry.sh)"
    docker2 pull -q "$image" >/dev/null || die "engine 2 cannot pull $image"
  fi
  # 2. A port published on host 2's address answers from the root namespace.
  docker2 rm -f "$name" >/dev/null 2>&1 || true
  docker2 run -d --name "$name" -p "$HOST2_ADDRESS:$port:8080" "$image" >/dev/null
  if wait_for 20 "http://$HOST2_ADDRESS:$port/health" curl -sf --max-time 2 "http://$HOST2_ADDRESS:$port/health"; then
    ok=1
  fi
  local ip
  ip=$(docker2 inspect -f '{{.NetworkSettings.Networks.bridge.IPAddress}}' "$name" 2>/dev/null || true)
  docker2 rm -f "$name" >/dev/null 2>&1 || true
  ((ok)) || die "container on host 2 (ip ${ip:-?}) not reachable at $HOST2_ADDRESS:$port from the root namespace"
  # Engine 1 does not see host 2's containers, nor host 2 engine 1's.
  local id1 id2
  id1=$(docker_cmd info -f '{{.ID}}') id2=$(docker2 info -f '{{.ID}}')
  [[ -n $id1 && $id1 != "$id2" ]] || die "engine 2 is engine 1 (ID $id2)"
  log "host2: verified pull of $image and -p $HOST2_ADDRESS:$port:8080 (container ip $ip) from the root namespace"

  # 3. docker over ssh, and the engine socket forwarded over ssh.
  local opts v
  mapfile -t opts < <(ssh2_opts)
  v=$(ssh "${opts[@]}" "root@$HOST2_ADDRESS" docker info --format '{{.ID}}') ||
    die "'ssh root@$HOST2_ADDRESS docker info' fails"
  [[ $v == "$id2" ]] || die "docker over ssh to host 2 reaches engine $v, not engine 2 ($id2)"
  local sock pid
  ok=0
  sock=$(mktemp -u "$RUNBOOK_RUN/verify-fwd2.XXXXXX.sock")
  ssh "${opts[@]}" -N -o ExitOnForwardFailure=yes -L "$sock:$HOST2_DOCKER_SOCK" "root@$HOST2_ADDRESS" &
  pid=$!
  if wait_for 10 "forwarded socket $sock" test -S "$sock" &&
    [[ $(curl -s --max-time 5 --unix-socket "$sock" http://docker/info | grep -o '"ID":"[^"]*"' | head -n1) == "\"ID\":\"$id2\"" ]]; then
    ok=1
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$sock"
  ((ok)) || die "OpenSSH streamlocal forwarding of $HOST2_DOCKER_SOCK does not reach engine 2"
  log "host2: verified 'docker info' over ssh and -L socket forwarding of engine 2"

  # 4. The runbooks' own path: DockerEngines over SshPool (needs `npm run build`).
  if [[ -f $RUNBOOK_REPO/dist/activities/docker.js && -f $RUNBOOK_REPO/dist/activities/ssh.js ]]; then
    local out
    # shellcheck disable=SC2016  # JavaScript, not shell
    out=$(cd "$RUNBOOK_REPO" && HOST2_SSH_FINGERPRINT="$(<"$HOST2_SSH_FINGERPRINT_FILE")" node -e '
      const os = require("node:os"), path = require("node:path"), fs = require("node:fs");
      const { SshPool } = require("./dist/activities/ssh.js");
      const { DockerEngines } = require("./dist/activities/docker.js");
      const [address, port, keyFile, socket] = process.argv.slice(1);
      const host = { name: "host2", address, dockerSocket: socket, minFreeDiskMb: 256,
        ssh: { address, port: Number(port), user: "root", keyFile, hostKey: process.env.HOST2_SSH_FINGERPRINT } };
      (async () => {
        const pool = new SshPool();
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "host2-verify-"));
        const engines = new DockerEngines(pool, dir);
        try {
          const docker = await engines.engine(host);
          const [v, info] = [await docker.version(), await docker.info()];
          console.log(`${info.ID} ${v.Version} ${pool.handshakes}`);
        } finally {
          await engines.closeAll(); await pool.closeAll(); fs.rmSync(dir, { recursive: true, force: true });
        }
      })().catch((e) => { console.error(e.message); process.exit(1); });
    ' "$HOST2_ADDRESS" "$HOST2_SSH_PORT" "$SSH_KEY" "$HOST2_DOCKER_SOCK") || die "DockerEngines over SshPool cannot reach engine 2"
    [[ ${out%% *} == "$id2" ]] || die "DockerEngines over SshPool reached engine ${out%% *}, not engine 2 ($id2)"
    log "host2: verified DockerEngines + SshPool (dist/) to engine 2: $out (ID, version, handshakes)"
  else
    log "host2: dist/ not built: skipped the DockerEngines + SshPool check (npm run build)"
  fi
}

dispatch "${1:-}" start stop status restart verify
