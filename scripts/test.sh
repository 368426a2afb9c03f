#!/usr/bin/env bash
# Run Megaki's whole test suite: the README's second command, and what CI runs.
#
#   1. release build with warnings as errors, every ctest test;
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build, every ctest test;
#   3. ThreadSanitizer build, every test that runs threads (ctest label
#      "threads": Yami's pool, libsazukari's submit/wait, the daemon
#      integration suites);
#   4. valgrind (memcheck, leaks are errors) over the unit tests;
#   5. a short libFuzzer run per fuzz target (FUZZ_SECONDS, default 20).
#
# Options: --quick runs stage 1 only. Build trees go to build/, build-asan/,
# build-tsan/, build-vg/ and build-fuzz/. The last line is "N passed, N
# failed".
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
stages_failed=()

export FUZZ_SECONDS=${FUZZ_SECONDS:-20}
scripts/install-deps.sh || { echo "install-deps failed" >&2; exit 1; }

# ctest prints "NN% tests passed, F tests failed out of T"; add it up.
count() {
  local log=$1 line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [ -n "$line" ]; then
    local f t
    f=$(sed -E 's/.*passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    t=$(sed -E 's/.*passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
    passed=$((passed + t - f))
    failed=$((failed + f))
  fi
}

stage() {
  local name=$1 dir=$2; shift 2
  local log="$dir/test-log.txt"
  echo "== $name =="
  mkdir -p "$dir"
  if ! cmake -S . -B "$dir" -DMK_WERROR=ON "$@" >"$dir/configure-log.txt" 2>&1; then
    cat "$dir/configure-log.txt"; stages_failed+=("$name (configure)"); failed=$((failed + 1)); return
  fi
  if ! cmake --build "$dir" -j"$jobs" >"$dir/build-log.txt" 2>&1; then
    tail -n 60 "$dir/build-log.txt"; stages_failed+=("$name (build)"); failed=$((failed + 1)); return
  fi
  (cd "$dir" && ctest --output-on-failure -j"$jobs" ${CTEST_ARGS:-}) 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || stages_failed+=("$name")
  count "$log"
}

stage "release" build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ $quick -eq 0 ]; then
  stage "asan+ubsan" build-asan -DCMAKE_BUILD_TYPE=Debug -DMK_ASAN=ON -DMK_UBSAN=ON -DMK_BENCH=OFF
  # halt_on_error: a race fails its test (ctest sees the exit status);
  # second_deadlock_stack: both stacks of a lock-order report.
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" CTEST_ARGS="-L threads" \
    stage "tsan" build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMK_TSAN=ON -DMK_BENCH=OFF
  CTEST_ARGS="-L unit" stage "valgrind" build-vg -DCMAKE_BUILD_TYPE=Debug -DMK_VALGRIND=ON -DMK_BENCH=OFF
  if [ -x scripts/fuzz-smoke.sh ]; then
    echo "== fuzz smoke =="
    if scripts/fuzz-smoke.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); stages_failed+=("fuzz smoke"); fi
  fi
fi

if ((${#stages_failed[@]})); then
  echo "failed stages: ${stages_failed[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#stages_failed[@]} -eq 0 ]
