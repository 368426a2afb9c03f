#!/usr/bin/env bash
# The README's first command: install what is needed, build, start MKD with
# its defaults (a key generated on first run, the hello-world PHP app), send
# one request with the `sazukari` client, print the answer, and stop MKD.
#
# MKD keeps its data (key, ticket keys) in a temporary directory here so the
# demo never touches a real installation; it listens on 127.0.0.1 on a port
# the kernel picks, so it cannot collide with a running mkd.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
echo "demo: building (cmake, build/) ..." >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target mkd sazukari_cli >/dev/null

data=$(mktemp -d "${TMPDIR:-/tmp}/megaki-demo.XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$data"
}
trap cleanup EXIT

# As root, mkd runs the PHP workers as `nobody`, who must be able to read
# the application and the worker shell in this tree. A checkout under a
# private home directory is not readable by it: the demo then runs the
# workers as root, and says so (a real installation puts them in a
# readable place; see docs/MKD.md, "Who can read what").
as_root=()
if [ "$(id -u)" = 0 ] &&
  ! runuser -u nobody -- test -r apps/hello/app.php -a -r arcangelo/bin/arcangelo.php 2>/dev/null; then
  echo "demo: $(pwd) is not readable by nobody; running the PHP workers as root" >&2
  as_root=(--worker_user=root)
fi

build/mkd/mkd serve --data_dir="$data" --port=0 --ready_file="$data/port" \
  --control_socket=none "${as_root[@]}" 2>"$data/mkd.log" &
pid=$!
for _ in $(seq 1 600); do # up to 30 s: a loaded machine, a first-run keygen
  [ -s "$data/port" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then cat "$data/mkd.log" >&2; echo "demo: mkd did not start" >&2; exit 1; fi
  sleep 0.05
done
[ -s "$data/port" ] || { cat "$data/mkd.log" >&2; echo "demo: mkd did not start" >&2; exit 1; }
port=$(cat "$data/port")
sed 's/^/mkd: /' "$data/mkd.log" >&2

echo "demo: sazukari -k $data/server.pub.pem 127.0.0.1:$port 'Hello from the Megaki demo'" >&2
build/libsazukari/sazukari -k "$data/server.pub.pem" "127.0.0.1:$port" 'Hello from the Megaki demo'
echo
