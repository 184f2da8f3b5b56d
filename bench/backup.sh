#!/usr/bin/env bash
# Runs bench/backup: builds, then the benchmark (see bench/README.md).
#   bash bench/backup.sh [--runs N] [--sizes 100,1024]
# The throwaway container bench-backup-pg is removed at the end, also on Ctrl-C or an error.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER_SOCK=${RUNBOOK_DOCKER_SOCK:-/run/temporal-runbooks/docker.sock}
# node removes the container itself (also on Ctrl-C); this catches whatever is left if it could not.
cleanup() { docker -H "unix://$DOCKER_SOCK" rm -fv bench-backup-pg >/dev/null 2>&1 || true; }
trap cleanup EXIT
for tool in docker zstd gzip node; do
  command -v "$tool" >/dev/null || { echo "bench/backup: $tool is not installed" >&2; exit 1; }
done
# tsc emits JS even when it reports type errors: the bench runs anyway if every error is in code
# it does not run; anything else (errors in bench/, activities/, common/, test/helpers/; no
# errors listed, e.g. an interrupted build) stops it.
if ! out=$(npm run --silent build 2>&1); then
  printf '%s\n' "$out" >&2
  if ! grep -q 'error TS' <<<"$out" || grep -Eq '^(bench|activities|common|test/helpers)/' <<<"$out"; then
    echo "bench/backup: the build failed" >&2
    exit 1
  fi
  echo "bench/backup: warning: type errors outside the code the benchmark runs (above); running the emitted JS" >&2
fi
node dist/bench/backup.js "$@"
