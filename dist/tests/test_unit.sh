#!/usr/bin/env bash
# dist/mkd.service agrees with mkd: Type=notify (mkd speaks the readiness
# protocol), the configuration checked before start and before reload,
# the capabilities mkd uses, and no MemoryDenyWriteExecute while the PHP
# workers keep PCRE's JIT (test_mkd_ops's test_pcre_jit shows a worker
# needing the JIT fails under it), and no StateDirectory=. Then `systemd-analyze verify`, with the
# unit's mkd paths pointed at the built binary, if systemd-analyze exists.
# Usage: test_unit.sh UNIT MKD_BINARY
set -u
unit=$1
mkd=$2
fails=0
fail() {
  echo "FAIL: $*"
  fails=$((fails + 1))
}
# The values of a key, one a line.
key() { sed -n "s/^$1=//p" "$unit"; }

[ "$(key Type)" = notify ] || fail "Type=$(key Type), not notify"
key ExecStartPre | grep -q '/mkd config --test ' ||
  fail "no ExecStartPre running mkd config --test"
mapfile -t reload < <(key ExecReload)
[[ ${reload[0]:-} == *"/mkd config --test "* ]] ||
  fail "the first ExecReload is not mkd config --test: '${reload[0]:-}'"
[ "${reload[1]:-}" = '/bin/kill -HUP $MAINPID' ] ||
  fail "the second ExecReload is not kill -HUP \$MAINPID: '${reload[1]:-}'"
# config --test takes the same configuration arguments as serve.
start_args=$(key ExecStart | sed 's/^[^ ]* serve //')
for line in "$(key ExecStartPre)" "${reload[0]:-}"; do
  [ "${line#* config --test }" = "$start_args" ] ||
    fail "'$line' does not test what ExecStart serves ($start_args)"
done
for cap in CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_KILL CAP_CHOWN; do
  key CapabilityBoundingSet | grep -qw "$cap" ||
    fail "CapabilityBoundingSet lacks $cap"
done
# The service starts as root: a StateDirectory= would be chowned back to
# root at every start, keys included, and the next reload (as `user`)
# could not read them.
[ -z "$(key StateDirectory)" ] ||
  fail "StateDirectory= gives /var/lib/megaki back to root at each start"
# mkd passes no pcre.jit to its workers: they run with PHP's own.
jit=$(php -r 'echo ini_get("pcre.jit");')
if [ "$(key MemoryDenyWriteExecute)" = yes ] && [ "$jit" = 1 ]; then
  fail "MemoryDenyWriteExecute=yes with pcre.jit=1: every worker's" \
    "preg_* fails to allocate JIT memory"
fi

if command -v systemd-analyze >/dev/null; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # The manual pages are not installed here: unit_verify checks the
  # installed unit with them.
  sed -E -e "s#^(Exec[A-Za-z]*=)[^ ]*/mkd #\\1$mkd #" -e '/^Documentation=/d' \
    "$unit" >"$tmp/mkd.service"
  if ! out=$(systemd-analyze verify "$tmp/mkd.service" 2>&1) ||
    [ -n "$out" ]; then
    fail "systemd-analyze verify:"
    echo "$out"
  fi
else
  echo "systemd-analyze not found: verify skipped"
fi

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "dist/mkd.service: all checks passed"
