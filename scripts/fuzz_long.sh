#!/usr/bin/env bash
# The forge suite of the contracts at length: 10,000 runs per fuzz test and 100,000 calls per invariant
# (1,000 sequences at foundry.toml's depth of 100), instead of foundry.toml's everyday 256 runs and
# 32 x 100 calls. Offline, with the pinned solc-js (foundry.toml). Prints forge's report and, last, the
# wall time.
#   ./scripts/fuzz_long.sh                      # the full counts
#   FUZZ_RUNS=1000 INVARIANT_CALLS=10000 ./scripts/fuzz_long.sh   # a scaled-down run
# Extra arguments go to `forge test` (e.g. --match-contract FederationInvariantTest).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

fuzz_runs=${FUZZ_RUNS:-10000}
invariant_calls=${INVARIANT_CALLS:-100000}
depth=${INVARIANT_DEPTH:-$(awk -F' *= *' '/^\[/{section=$0} section=="[invariant]" && $1=="depth"{print $2}' foundry.toml)}
if [ $((invariant_calls % depth)) -ne 0 ]; then
  echo "fuzz_long: INVARIANT_CALLS ($invariant_calls) must be a multiple of INVARIANT_DEPTH ($depth)" >&2
  exit 2
fi
invariant_runs=$((invariant_calls / depth))
forge=hardhat-local/node_modules/.bin/forge
[ -x "$forge" ] || { echo "fuzz_long: forge is not installed at $forge; run ./scripts/setup" >&2; exit 1; }

echo "fuzz_long: $fuzz_runs fuzz runs per test, $invariant_runs invariant runs x depth $depth = $invariant_calls calls per invariant" >&2
start=$(date +%s)
status=0
env FOUNDRY_PROFILE=default FOUNDRY_FUZZ_RUNS="$fuzz_runs" FOUNDRY_INVARIANT_RUNS="$invariant_runs" \
  FOUNDRY_INVARIANT_DEPTH="$depth" FOUNDRY_DISABLE_NIGHTLY_WARNING=1 NO_COLOR=1 \
  "$forge" test --offline "$@" || status=$?
echo "fuzz_long: $(( $(date +%s) - start )) s wall, exit $status" >&2
exit "$status"
