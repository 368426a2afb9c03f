#!/usr/bin/env bash
# Build the libFuzzer targets with clang (-DMK_FUZZ=ON: ASan + UBSan +
# libFuzzer) into build-fuzz/ and run each one for FUZZ_SECONDS seconds
# (default 30) on a scratch copy of its committed corpus fuzz/corpus/<t>.
#
#   FUZZ_SECONDS=60 scripts/fuzz-smoke.sh            all targets
#   scripts/fuzz-smoke.sh fuzz_record fuzz_ticket    some of them
#
# Environment: FUZZ_SECONDS, FUZZ_CC (default clang), FUZZ_BUILD_DIR
# (default build-fuzz), FUZZ_JOBS (build parallelism).
#
# Fails on any crash, sanitizer report, leak, timeout or OOM, and keeps the
# reproducer in build-fuzz/artifacts/ (replay it with the target binary, or
# copy it into fuzz/corpus/<t>/ once fixed so ctest replays it for good).
# Prints one line per target: execs, exec/s, coverage, features, corpus.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

secs=${FUZZ_SECONDS:-30}
cc=${FUZZ_CC:-clang}
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
targets=("$@")

if ! command -v "$cc" >/dev/null; then
  echo "fuzz-smoke: $cc not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi

mkdir -p "$build"
if ! CC=$cc cmake -S "$root" -B "$build" -DMK_FUZZ=ON -DMK_BENCH=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/fuzz-smoke.configure.log" 2>&1; then
  cat "$build/fuzz-smoke.configure.log" >&2
  exit 1
fi
# By default every harness fuzz/CMakeLists.txt builds (it writes the list).
if ((${#targets[@]} == 0)); then
  read -r -a targets <"$build/fuzz-targets.txt"
fi
echo "fuzz-smoke: building ${#targets[@]} target(s) with $cc in $build"
if ! cmake --build "$build" -j"$jobs" --target "${targets[@]}" \
      >"$build/fuzz-smoke.build.log" 2>&1; then
  tail -n 60 "$build/fuzz-smoke.build.log" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/megaki-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/artifacts"

# The last value of a libFuzzer "stat::" line or of a "#N ... cov: X" line.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }
last() { grep -Eo "$1: [0-9]+" "$2" | tail -n 1 | grep -Eo '[0-9]+$'; }

failed=()
printf '%-20s %12s %9s %6s %7s %7s  %s\n' target execs exec/s cov ft corpus result
for t in "${targets[@]}"; do
  corpus="$work/$t"
  mkdir -p "$corpus"
  cp -r "fuzz/corpus/$t/." "$corpus/" 2>/dev/null || true
  log="$build/artifacts/$t.log"
  # Run from the project root (the harnesses read tests/vectors/keys).
  "$build/fuzz/$t" -max_total_time="$secs" -print_final_stats=1 \
      -timeout=10 -rss_limit_mb=2048 -max_len=36000 \
      -artifact_prefix="$build/artifacts/$t-" "$corpus" >"$log" 2>&1
  rc=$?
  result=ok
  if [ $rc -ne 0 ] || grep -qE '^==[0-9]+==ERROR|runtime error:|^SUMMARY:' "$log"; then
    result="FAILED (exit $rc, log $log)"
    failed+=("$t")
  fi
  printf '%-20s %12s %9s %6s %7s %7s  %s\n' "$t" \
    "$(stat number_of_executed_units "$log")" \
    "$(stat average_exec_per_sec "$log")" \
    "$(last cov "$log")" "$(last ft "$log")" \
    "$(ls "$corpus" | wc -l)" "$result"
done

if ((${#failed[@]})); then
  echo "fuzz-smoke: FAILED: ${failed[*]}" >&2
  for t in "${failed[@]}"; do
    echo "---- $t ----" >&2
    grep -E -A15 '^==[0-9]+==ERROR|runtime error:|deadly signal|Test unit written' \
      "$build/artifacts/$t.log" | head -n 40 >&2
  done
  exit 1
fi
echo "fuzz-smoke: all ${#targets[@]} target(s) ran ${secs}s without a finding"
