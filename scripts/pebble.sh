#!/usr/bin/env bash
# ACME test server for the certificate tests: Debian's pebble (2.4) in the foreground, not as a
# system service. ACME directory $PEBBLE_DIRECTORY_URL, management API $PEBBLE_MANAGEMENT_URL,
# both HTTPS with a certificate for 127.0.0.1/localhost from our own CA ($PEBBLE_TLS_CA).
# State under $PEBBLE_HOME, made with openssl on first start and kept:
#   ca.pem, ca.key        the CA of pebble's HTTPS listeners (10 years): what a client trusts
#                         to talk to pebble (curl --cacert, NODE_EXTRA_CA_CERTS, an https.Agent's ca)
#   server.pem, server.key  the listeners' certificate (127.0.0.1, localhost, pebble), signed by
#                         ca.pem; renewed when it has less than 30 days left
#   pebble-config.json    written on every start
# Pebble itself keeps nothing: accounts, orders and its issuing root/intermediate are made anew on
# every start. A test gets the root that issued certificates chain to from the management API:
#   curl --cacert "$PEBBLE_TLS_CA" "$PEBBLE_MANAGEMENT_URL/roots/0"          (and /intermediates/0)
# Validation: every name is resolved through bind9 (-dnsserver $BIND9_ADDRESS, scripts/bind9.sh;
# its names point to 127.0.0.1); HTTP-01 fetches http://<name>:$PEBBLE_HTTP_PORT/.well-known/
# acme-challenge/<token>, TLS-ALPN-01 connects to <name>:$PEBBLE_TLS_PORT, DNS-01 asks bind9 for
# _acme-challenge.<name> TXT. No sleep before validating (PEBBLE_VA_NOSLEEP=1), no nonce rejected
# on purpose (PEBBLE_WFE_NONCEREJECT=0), not strict. Issued certificates are valid
# $PEBBLE_CERT_VALIDITY_SECONDS (config "certificateValidityPeriod") unless the order sets
# notBefore/notAfter (pebble honours both, RFC 8555 §7.4): e.g. notBefore = now - 2 days,
# notAfter = now + 1 day makes a certificate with a third of its lifetime left.
# Valid authorizations are never reused (PEBBLE_AUTHZREUSE=0; pebble's default reuses them half of
# the time): every order has to pass its challenges, so the tests of challenge handling and
# clean-up are deterministic (Let's Encrypt does reuse them: clients must accept a valid authz).
# Usage: pebble.sh start|stop|status|restart
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PEBBLE=/usr/bin/pebble
PIDFILE=$RUNBOOK_RUN/pebble.pid
LOGFILE=$RUNBOOK_LOGS/pebble.log
IP=${PEBBLE_ADDRESS%:*}
PORT=${PEBBLE_ADDRESS##*:}
MGMT_PORT=${PEBBLE_MANAGEMENT_ADDRESS##*:}
CA_KEY=$PEBBLE_HOME/ca.key
SERVER_CERT=$PEBBLE_HOME/server.pem
SERVER_KEY=$PEBBLE_HOME/server.key
CONFIG=$PEBBLE_HOME/pebble-config.json

# The directory answers over HTTPS with a certificate our CA signed.
healthy() {
  curl -sf --noproxy '*' --max-time 3 --cacert "$PEBBLE_TLS_CA" "$PEBBLE_DIRECTORY_URL" | grep -q '"newNonce"'
}

ensure_ca() {
  mkdir -p "$PEBBLE_HOME"
  if [[ ! -s $PEBBLE_TLS_CA || ! -s $CA_KEY ]]; then
    log "pebble: making the CA of its HTTPS listeners ($PEBBLE_TLS_CA)"
    rm -f "$SERVER_CERT" "$SERVER_KEY"
    (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CA_KEY.tmp" 2>/dev/null)
    openssl req -x509 -new -key "$CA_KEY.tmp" -sha256 -days 3650 -out "$PEBBLE_TLS_CA.tmp" \
      -subj "/CN=temporal-runbooks pebble test CA" \
      -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null ||
      die "openssl could not make the CA certificate"
    mv "$CA_KEY.tmp" "$CA_KEY"
    mv "$PEBBLE_TLS_CA.tmp" "$PEBBLE_TLS_CA"
  fi
  chmod 600 "$CA_KEY"
  chmod 644 "$PEBBLE_TLS_CA"
  # the listeners' certificate: present, signed by this CA, 30 days or more left
  if [[ -s $SERVER_CERT && -s $SERVER_KEY ]] &&
    openssl verify -CAfile "$PEBBLE_TLS_CA" "$SERVER_CERT" >/dev/null 2>&1 &&
    openssl x509 -in "$SERVER_CERT" -noout -checkend $((30 * 86400)) >/dev/null 2>&1; then
    return 0
  fi
  log "pebble: making its HTTPS certificate ($SERVER_CERT: 127.0.0.1, localhost)"
  local csr ext
  csr=$(mktemp) ext=$(mktemp)
  (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$SERVER_KEY.tmp" 2>/dev/null)
  openssl req -new -key "$SERVER_KEY.tmp" -subj "/CN=pebble" -out "$csr" 2>/dev/null
  cat >"$ext" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:pebble
EXT
  openssl x509 -req -in "$csr" -CA "$PEBBLE_TLS_CA" -CAkey "$CA_KEY" -CAcreateserial \
    -CAserial "$PEBBLE_HOME/ca.srl" -days 825 -sha256 -extfile "$ext" -out "$SERVER_CERT.tmp" 2>/dev/null ||
    { rm -f "$csr" "$ext"; die "openssl could not sign pebble's certificate"; }
  rm -f "$csr" "$ext"
  mv "$SERVER_KEY.tmp" "$SERVER_KEY"
  mv "$SERVER_CERT.tmp" "$SERVER_CERT"
  chmod 600 "$SERVER_KEY"
}

write_config() {
  cat >"$CONFIG.tmp" <<JSON
{
  "pebble": {
    "listenAddress": "$PEBBLE_ADDRESS",
    "managementListenAddress": "$PEBBLE_MANAGEMENT_ADDRESS",
    "certificate": "$SERVER_CERT",
    "privateKey": "$SERVER_KEY",
    "httpPort": $PEBBLE_HTTP_PORT,
    "tlsPort": $PEBBLE_TLS_PORT,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false,
    "certificateValidityPeriod": $PEBBLE_CERT_VALIDITY_SECONDS
  }
}
JSON
  mv "$CONFIG.tmp" "$CONFIG"
}

start() {
  ensure_dirs
  [[ -x $PEBBLE ]] || die "$PEBBLE missing: run scripts/install.sh (pebble)"
  command -v openssl >/dev/null || die "openssl missing: run scripts/install.sh (openssl)"
  [[ $PEBBLE_HTTP_PORT =~ ^[0-9]+$ && $PEBBLE_CERT_VALIDITY_SECONDS =~ ^[0-9]+$ ]] ||
    die "PEBBLE_HTTP_PORT and PEBBLE_CERT_VALIDITY_SECONDS must be numbers"
  if pid_alive "$PIDFILE" && healthy; then
    log "pebble: already running (pid $(<"$PIDFILE"), $PEBBLE_DIRECTORY_URL)"
    return 0
  fi
  if ! pid_alive "$PIDFILE"; then
    local p
    for p in "$PORT" "$MGMT_PORT"; do
      if tcp_open "$IP" "$p"; then
        die "something else already listens on $IP:$p (not our pebble: no live pid in $PIDFILE)"
      fi
    done
    # without bind9 no name resolves for the validations: say so now rather than on every order
    bash "$(dirname "$0")/bind9.sh" status >/dev/null 2>&1 ||
      warn "pebble: bind9 ($BIND9_ADDRESS) is not running: validations will not resolve any name (start scripts/bind9.sh)"
    ensure_ca
    write_config
    log "pebble: starting on $PEBBLE_DIRECTORY_URL, resolving through $BIND9_ADDRESS (log: $LOGFILE)"
    # env execs pebble, so the pid file holds pebble's pid.
    start_daemon "$PIDFILE" "$LOGFILE" env PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
      "$PEBBLE" -config "$CONFIG" -dnsserver "$BIND9_ADDRESS" -strict=false
  fi
  if ! wait_daemon "$PIDFILE" 30 "pebble on $PEBBLE_DIRECTORY_URL" healthy; then
    tail -n 30 "$LOGFILE" >&2
    pid_alive "$PIDFILE" || die "pebble exited (log: $LOGFILE)"
    die "pebble does not answer on $PEBBLE_DIRECTORY_URL (log: $LOGFILE)"
  fi
  log "pebble: up ($PEBBLE_DIRECTORY_URL, management $PEBBLE_MANAGEMENT_URL, HTTPS CA $PEBBLE_TLS_CA, HTTP-01 port $PEBBLE_HTTP_PORT, pid $(<"$PIDFILE"))"
}

stop() { stop_pidfile "$PIDFILE" "pebble" 10; }

status() {
  if pid_alive "$PIDFILE" && healthy; then
    echo "pebble: running (pid $(<"$PIDFILE")), $PEBBLE_DIRECTORY_URL (CA $PEBBLE_TLS_CA), HTTP-01 port $PEBBLE_HTTP_PORT, DNS $BIND9_ADDRESS"
  else
    echo "pebble: not running"
    return 1
  fi
}

dispatch "${1:-}" start stop status restart
