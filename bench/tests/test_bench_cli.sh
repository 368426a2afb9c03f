#!/usr/bin/env bash
# The benchmarks' command lines (getopt_long): --help prints the usage and
# runs nothing, a bad number, a value out of range or an unknown option is
# a usage error (exit 2, the option named, a pointer to --help).
# Usage: test_bench_cli.sh BENCH_DIR
set -u
dir=$1
fails=0

# expect STATUS TEXT COMMAND...: the exit status and a line of the output.
expect() {
  local want=$1 text=$2 out st
  shift 2
  out=$("$@" 2>&1)
  st=$?
  if [ "$st" -ne "$want" ] || ! grep -qF -- "$text" <<<"$out"; then
    echo "FAIL: $* -> exit $st (wanted $want and '$text'):"
    echo "$out" | head -5
    fails=$((fails + 1))
  fi
}

for b in mkd_bench mkd_flood_bench core_bench oaep_timing; do
  expect 0 "usage: $b" "$dir/$b" --help
  expect 2 "unrecognized option '--no-such'" "$dir/$b" --no-such
  expect 2 "Try '$b --help'." "$dir/$b" --no-such
  expect 2 "unexpected argument 'extra'" "$dir/$b" extra
done
expect 2 "--clients: expected a whole number in 1..64, not '0'" \
  "$dir/mkd_bench" --clients=0
expect 2 "--idle: expected a whole number" "$dir/mkd_bench" --idle 12x
expect 2 "--seconds: expected a number" "$dir/mkd_bench" --seconds=abc
expect 2 "--factor: expected a number" "$dir/mkd_flood_bench" --factor -1
expect 2 "--rate: expected a number" "$dir/mkd_flood_bench" --rate=0
expect 2 "--reps: expected a whole number in 1..99, not '100'" \
  "$dir/core_bench" --reps 100
expect 2 "--time: expected a number" "$dir/core_bench" --time=1x
expect 2 "--samples: expected a whole number" "$dir/oaep_timing" --samples=0
expect 2 "--pool: expected a whole number" "$dir/oaep_timing" --pool 1000000
expect 2 "--invalid: expected random or label, not 'foo'" \
  "$dir/oaep_timing" --invalid foo
expect 2 "requires an argument" "$dir/oaep_timing" --seed

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "bench command lines: all checks passed"
