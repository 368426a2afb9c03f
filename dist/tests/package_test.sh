#!/usr/bin/env bash
# ctest "package" (root only): build the Debian package from this build
# tree, install it with dpkg, check what the maintainer scripts did (the
# users, /var/lib/megaki, the conffile, the unit enabled but not started
# without systemd), run the unit's ExecStart line as the unit would (in
# the background, on 127.0.0.1, port 0: a free one, read from ready_file),
# ask the installed sazukari, stop mkd by its PID, purge the package and
# check what purge removes and what it keeps. Exit 77 (ctest: skipped)
# when not root, and for a sanitizer build (MK_SANITIZED set).
#   package_test.sh BUILD_DIR
set -uo pipefail
build=$1
if [ -n "${MK_SANITIZED:-}" ]; then
  echo "skipped: a sanitizer build ($MK_SANITIZED) is not packaged"
  exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: needs root (installs and purges the megaki package)"
  exit 77
fi
# One at a time on this machine: two build trees' suites running at once
# would install and purge the same package under each other.
exec 9>/run/lock/megaki-package-test.lock
if ! flock -w 900 9; then
  echo "package_test: another package test held the lock for 15 minutes" >&2
  exit 1
fi
if dpkg-query -W -f='${Status}' megaki 2>/dev/null | grep -q installed; then
  echo "package_test: megaki is installed on this machine; this test" \
    "installs and purges it, so it will not run here" >&2
  exit 1
fi
for d in /var/lib/megaki /etc/megaki; do
  if [ -e "$d" ]; then
    echo "package_test: $d exists on this machine (a source install?);" \
      "the package would take it over and purge it, so this test will not run here" >&2
    exit 1
  fi
done
tmp=$(mktemp -d /tmp/megaki-package-test.XXXXXX)
pid=""
had_users=()
for u in megaki megaki-app; do id "$u" >/dev/null 2>&1 && had_users+=("$u"); done
cleanup() {
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  dpkg-query -W -f='${Status}' megaki 2>/dev/null | grep -q installed &&
    dpkg --purge megaki >/dev/null
  # The users the package made (purge keeps them, as Debian does): this
  # machine gets back the accounts it had, and none of the directories
  # (checked absent above).
  for u in megaki-app megaki; do
    [[ " ${had_users[*]} " == *" $u "* ]] || ! id "$u" >/dev/null 2>&1 ||
      deluser --system --quiet "$u" >/dev/null 2>&1 || true
  done
  rm -rf /var/lib/megaki /etc/megaki # after a purge that failed
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "package_test: $*" >&2; [ -f "$tmp/mkd.log" ] && tail -n 30 "$tmp/mkd.log" >&2; exit 1; }
# Poll a condition (a command) for up to $1 seconds.
poll() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done
}

cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack failed"; }
deb=$(ls "$tmp"/pkg/megaki_*.deb) || fail "cpack made no .deb"
dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg -i failed"; }

# What the maintainer scripts did.
for u in megaki megaki-app; do id "$u" >/dev/null 2>&1 || fail "no user $u"; done
[ "$(stat -c '%U:%G %a' /var/lib/megaki)" = "megaki:megaki 700" ] ||
  fail "/var/lib/megaki is $(stat -c '%U:%G %a' /var/lib/megaki), not megaki:megaki 700"
dpkg-query -W -f='${Conffiles}\n' megaki | grep -q '^ /etc/megaki/mkd.conf ' ||
  fail "/etc/megaki/mkd.conf is not a conffile"
unit=/usr/lib/systemd/system/mkd.service
wants=/etc/systemd/system/multi-user.target.wants/mkd.service
[ -e "$wants" ] && [ "$(readlink -f "$wants")" = "$(readlink -f "$unit")" ] ||
  fail "mkd.service is not enabled ($wants)"
running() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = /usr/sbin/mkd ] && return 0
  done
  return 1
}
if [ ! -d /run/systemd/system ] && running; then
  fail "mkd was started although systemd does not run here"
fi

# The unit's ExecStart line, as systemd would run it (its UMask), with
# two overrides: a free port and a file that says when it listens.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$exec_start" ] || fail "no ExecStart in $unit"
read -r -a argv <<<"$exec_start"
(umask 0077 && exec "${argv[@]}" --port=0 --ready_file="$tmp/ready") \
  >"$tmp/mkd.log" 2>&1 &
pid=$!
poll 120 test -s "$tmp/ready" || fail "mkd did not become ready"
port=$(head -n 1 "$tmp/ready")
[ "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" = "$(id -u megaki)" ] ||
  fail "mkd does not run as megaki"

# A request, with the installed client, pinning the key mkd made.
/usr/bin/sazukari -k /var/lib/megaki/server.pub.pem "127.0.0.1:$port" \
  "from the package test" >"$tmp/answer" 2>"$tmp/sazukari.err" ||
  { cat "$tmp/sazukari.err"; fail "sazukari failed (exit $?)"; }
grep -q "^Hello, world!" "$tmp/answer" || fail "unexpected answer: $(cat "$tmp/answer")"

kill -TERM "$pid"
poll 60 eval '! kill -0 $pid 2>/dev/null' || fail "mkd did not stop on SIGTERM"
wait "$pid"
status=$?
pid=""
[ $status -eq 0 ] || fail "mkd exited $status after SIGTERM"

# Purge: the package's files, the conffile, the data directory (the keys)
# and the unit's enablement go; the system users stay (Debian keeps them).
dpkg --purge megaki >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; fail "dpkg --purge failed"; }
for f in /usr/sbin/mkd /etc/megaki /var/lib/megaki "$wants" "$unit"; do
  [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f is still there after purge"
done
for u in megaki megaki-app; do id "$u" >/dev/null 2>&1 || fail "purge removed the user $u"; done
echo "package_test: built, installed, served a request on port $port, purged"
