#!/bin/sh
# One-shot: creates the namespace if missing and registers the runbooks' custom
# search attributes (service temporal-search-attributes in
# docker-compose.temporal.yml; runs in temporalio/admin-tools, busybox sh).
# Also usable against any existing cluster that the `temporal` CLI can reach:
#   TEMPORAL_ADDRESS=host:7233 TEMPORAL_NAMESPACE=default \
#   RUNBOOK_SEARCH_ATTRIBUTES='RunbookApp=Keyword RunbookEnv=Keyword RunbookStep=Keyword RunbookAwaitingApproval=Bool' \
#   sh deploy/temporal/register-search-attributes.sh
# TLS / API key: a recent temporal CLI reads the same env vars as our worker
# (TEMPORAL_API_KEY, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
# TEMPORAL_TLS_SERVER_CA_CERT_PATH).
# Idempotent: an attribute that already exists with the same type is left alone;
# one that exists with another type is an error (it cannot be changed in place).
set -eu

: "${TEMPORAL_ADDRESS:?}" "${RUNBOOK_SEARCH_ATTRIBUTES:?}"
NAMESPACE=${TEMPORAL_NAMESPACE:-default}
RETENTION=${TEMPORAL_NAMESPACE_RETENTION:-720h}
CREATE_NAMESPACE=${RUNBOOK_CREATE_NAMESPACE:-true}

say() { echo "search-attributes: $*"; }

# retry N DESCRIPTION CMD...: runs CMD until it succeeds, at most N times, 2 s apart.
retry() {
  _max=$1 _what=$2 _n=1
  shift 2
  until "$@"; do
    if [ "$_n" -ge "$_max" ]; then
      say "giving up: $_what (after $_n attempts)" >&2
      return 1
    fi
    say "waiting: $_what ($_n)"
    _n=$((_n + 1))
    sleep 2
  done
}

quietly() { "$@" >/dev/null 2>&1; }

retry 60 "Temporal at $TEMPORAL_ADDRESS to be serving" \
  quietly temporal operator cluster health --address "$TEMPORAL_ADDRESS"

if quietly temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE"; then
  say "namespace $NAMESPACE exists"
elif [ "$CREATE_NAMESPACE" = true ]; then
  say "creating namespace $NAMESPACE (retention $RETENTION)"
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" --retention "$RETENTION"
else
  say "namespace $NAMESPACE does not exist (RUNBOOK_CREATE_NAMESPACE=false)" >&2
  exit 1
fi

# Sets $existing to the namespace's search attributes as "name type" lines, lower case, types
# without any INDEXED_VALUE_TYPE_ prefix. A new namespace takes a few seconds to reach every
# cache, hence the retries.
read_attributes() {
  _out=$(temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE") || return 1
  existing=$(printf '%s\n' "$_out" | tr '[:upper:]' '[:lower:]' | sed 's/indexed_value_type_//g')
}

# has NAME [TYPE]: is NAME registered (with TYPE)?
has() {
  _hn=$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')
  _ht=$(printf '%s' "${2:-}" | tr '[:upper:]' '[:lower:]')
  if [ -n "$_ht" ]; then
    printf '%s\n' "$existing" | grep -Eq "(^|[[:space:]])$_hn[[:space:]]+$_ht([[:space:]]|\$)"
  else
    printf '%s\n' "$existing" | grep -Eq "(^|[[:space:]])$_hn([[:space:]]|\$)"
  fi
}

create_attribute() {
  temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" \
    --name "$1" --type "$2"
}

retry 30 "search attributes of namespace $NAMESPACE to be readable" read_attributes
for pair in $RUNBOOK_SEARCH_ATTRIBUTES; do
  name=${pair%%=*}
  type=${pair#*=}
  if [ -z "$name" ] || [ "$name" = "$pair" ] || [ -z "$type" ]; then
    say "bad entry '$pair' in RUNBOOK_SEARCH_ATTRIBUTES (want Name=Type)" >&2
    exit 1
  fi
  if has "$name" "$type"; then
    say "$name ($type) already registered"
  elif has "$name"; then
    say "$name is registered with a type other than $type: that cannot be changed in place" >&2
    exit 1
  else
    say "registering $name ($type)"
    retry 10 "register $name" create_attribute "$name" "$type"
  fi
done

# Verify: every attribute is there with its type.
read_attributes
for pair in $RUNBOOK_SEARCH_ATTRIBUTES; do
  if ! has "${pair%%=*}" "${pair#*=}"; then
    say "$pair is not registered after create" >&2
    exit 1
  fi
done
say "namespace $NAMESPACE has: $(echo $RUNBOOK_SEARCH_ATTRIBUTES)"
