#!/usr/bin/env bash
# Run the whole suite (scripts/test.sh) N times in a row (default 3) while
# a CPU hog keeps every core busy, as a loaded CI machine or a developer's
# laptop would: the suite must not depend on scheduling luck. Extra
# arguments go to scripts/test.sh (e.g. --quick). Stops at the first
# failing run; the hog is stopped by its PID whatever happens.
#
#   scripts/test-under-load.sh [N] [test.sh arguments...]
set -uo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
[ $# -gt 0 ] && shift
if ! command -v stress-ng >/dev/null; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq stress-ng >/dev/null
fi

cpus=$(nproc 2>/dev/null || echo 2)
stress-ng --cpu "$cpus" --timeout 0 --quiet &
hog=$!
trap 'kill "$hog" 2>/dev/null; wait "$hog" 2>/dev/null' EXIT
echo "load: stress-ng --cpu $cpus (pid $hog)"

for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  echo "== run $i of $runs under load =="
  if ! scripts/test.sh "$@" > "test-under-load-$i.log" 2>&1; then
    tail -n 40 "test-under-load-$i.log"
    echo "run $i FAILED after $(($(date +%s) - start)) s (log: test-under-load-$i.log)"
    exit 1
  fi
  echo "run $i: $(tail -n 1 "test-under-load-$i.log") in $(($(date +%s) - start)) s"
done
echo "$runs of $runs runs passed under load"
