#!/usr/bin/env bash
# Mutation testing of the pacing engine (issue 19): cargo-mutants breaks one thing at a
# time in the engine and runs the tests that cover it; every mutant must make a test
# FAIL (a hang past the timeout counts as "timeout", not as caught: give such a test a
# bound).
#
#   scripts/mutants.sh                     # all of pacer/ (slow: one build per mutant)
#   scripts/mutants.sh --shard 0/8         # a one-in-eight sample (any cargo-mutants flag)
#   AREA=drivers scripts/mutants.sh        # src/limiter/, run.rs, current.rs instead
#   AREA=all scripts/mutants.sh --list     # list the mutants only
#   FEATURES=redis AREA=shared scripts/mutants.sh   # shared/ and clearing.rs (redis-server on PATH)
#
# Environment: AREA (pacer | drivers | shared | all, default pacer), TIMEOUT (seconds per
# mutant's test run, default 120), JOBS (mutants built and tested at once, default 1),
# PROPTEST_CASES (cases of tests/invariants.rs, default 64 here),
# OUT (output dir, default target/mutants-$AREA; results in $OUT/mutants.out/),
# FEATURES (cargo features to build and test with, default none: code behind a feature,
# e.g. current.rs's stream hand-over, is not compiled without it and its mutants show as
# missed; `FEATURES=tower,reqwest` builds it and runs tests/streams.rs).
#
# By default cargo-mutants copies the source tree (without target/, which is
# gitignored) to a temp dir and builds there, so this checkout stays usable; the first
# build there is from scratch. IN_PLACE=1 mutates this checkout instead and reuses
# target/: then do not edit or build here while it runs, and check `git diff` after an
# interrupted run (mutations are marked `/* ~ changed by cargo-mutants ~ */`).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=27.1.0
if ! cargo mutants --version >/dev/null 2>&1; then
    echo "installing cargo-mutants $VERSION from crates.io" >&2
    cargo install cargo-mutants --locked --version "$VERSION"
fi

AREA=${AREA:-pacer}
TIMEOUT=${TIMEOUT:-120}
export PROPTEST_CASES=${PROPTEST_CASES:-64}
OUT=${OUT:-target/mutants-$AREA}

files=()
case "$AREA" in
    pacer) files=(--file 'ratellmiter-runtime/src/pacer/*.rs') ;;
    drivers) files=(--file 'ratellmiter-runtime/src/limiter/*.rs'
                    --file ratellmiter-runtime/src/run.rs
                    --file ratellmiter-runtime/src/current.rs) ;;
    shared) files=(--file 'ratellmiter-runtime/src/shared/*.rs'
                   --file ratellmiter-runtime/src/limiter/clearing.rs) ;;
    all) files=(--file 'ratellmiter-runtime/src/pacer/*.rs'
                --file 'ratellmiter-runtime/src/limiter/*.rs'
                --file ratellmiter-runtime/src/run.rs
                --file ratellmiter-runtime/src/current.rs) ;;
    *) echo "AREA must be pacer, drivers, shared or all" >&2; exit 2 ;;
esac

# Every test of the runtime (about 12 s on 2 cores; the lib tests, including
# pacer/tests.rs and limiter/tests.rs, first, so a mutant they catch ends the run there),
# with the default features unless FEATURES is set; doc tests left out, they cost a
# build each. The tests themselves are never mutated.
tests=(--lib --tests)
# The multi-process Redis tests (tests/redis_processes.rs, half a minute of real time)
# test the store's leases, not the engine or the drivers: only AREA=shared runs them.
skip=()
if [ "$AREA" != shared ]; then skip=(--skip four_processes --skip a_killed_process); fi

features=()
if [ -n "${FEATURES:-}" ]; then features=(--features "$FEATURES"); fi

place=(--jobs "${JOBS:-1}")
if [ "${IN_PLACE:-0}" = 1 ]; then place=(--in-place); fi  # --in-place takes no --jobs

mkdir -p "$OUT"
exec cargo mutants "${place[@]}" "${features[@]}" --package ratellmiter-runtime "${files[@]}" \
    --exclude 'ratellmiter-runtime/src/pacer/tests.rs' \
    --exclude 'ratellmiter-runtime/src/limiter/tests.rs' \
    --timeout "$TIMEOUT" --output "$OUT" "$@" \
    -- "${tests[@]}" -- "${skip[@]}"
