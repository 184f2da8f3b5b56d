#!/usr/bin/env bash
# Runs bench/cutover: builds, then the benchmark (see bench/README.md).
#   bash bench/cutover.sh [--runs N] [--size MiB] [--rate writes/s] [--help]
# Two throwaway PostgreSQL 15 servers under $TMPDIR/pg-cluster-bench-cutover-<this pid>-*; node
# stops and removes them at the end, also on Ctrl-C or an error; this catches whatever is left.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export BENCH_CUTOVER_TAG=$$
cleanup() {
  local d
  for d in "${TMPDIR:-/tmp}"/pg-cluster-bench-cutover-"$BENCH_CUTOVER_TAG"-*; do
    [ -d "$d" ] || continue
    [ -f "$d/data/postmaster.pid" ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$d/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$d"
  done
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "bench/cutover: run as root (the servers run as the postgres user, through runuser)" >&2; exit 1; }
for tool in node runuser "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/pg_dump" "$PG_BIN/psql" pg_dump psql; do
  command -v "$tool" >/dev/null || { echo "bench/cutover: $tool is not installed (PostgreSQL 15 server and client)" >&2; exit 1; }
done
# tsc emits JS even when it reports type errors: the bench runs anyway if every error is in code
# it does not run; anything else (errors in bench/, activities/, common/, test/helpers/; no
# errors listed, e.g. an interrupted build) stops it.
if ! out=$(npm run --silent build 2>&1); then
  printf '%s\n' "$out" >&2
  if ! grep -q 'error TS' <<<"$out" || grep -Eq '^(bench|activities|common|test/helpers)/' <<<"$out"; then
    echo "bench/cutover: the build failed" >&2
    exit 1
  fi
  echo "bench/cutover: warning: type errors outside the code the benchmark runs (above); running the emitted JS" >&2
fi
node dist/bench/cutover.js "$@"
