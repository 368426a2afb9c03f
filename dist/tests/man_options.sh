#!/usr/bin/env bash
# ctest "man_options": every option mkd knows (its option table, as
# `mkd config` prints it) has its entry in mkd.conf(5), and the manual
# describes no option mkd does not know, so that the two cannot drift.
#   man_options.sh MKD MKD_CONF_5
set -euo pipefail
mkd=$1 man=$2
known=$("$mkd" config | sed -n 's/^\([a-z_][a-z0-9_]*\) = .*/\1/p' | sort)
# An entry: ".TP" then ".B name" (mkd.conf(5), OPTIONS).
described=$(awk '/^\.SH OPTIONS/ { on = 1; next } /^\.SH / { on = 0 }
  on && prev == ".TP" && $1 == ".B" { print $2 } { prev = $0 }' "$man" | sort)
[ -n "$known" ] || { echo "man_options: mkd config printed no option" >&2; exit 1; }
# Keyed options (env[NAME], php_value[NAME]) are not listed by `mkd config`
# one by one: each described must be one mkd accepts.
keyed=$(echo "$described" | grep '\[NAME\]$' || true)
described=$(echo "$described" | grep -v '\[NAME\]$')
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
for k in $keyed; do
  echo "${k%\[NAME\]}[MKT_CHECK] = 1" >"$conf"
  "$mkd" config -c "$conf" >/dev/null 2>&1 ||
    { echo "man_options: mkd does not accept $k in its file" >&2; exit 1; }
done
missing=$(comm -23 <(echo "$known") <(echo "$described"))
extra=$(comm -13 <(echo "$known") <(echo "$described"))
[ -z "$missing" ] || echo "man_options: mkd.conf(5) does not describe:" $missing >&2
[ -z "$extra" ] || echo "man_options: mkd.conf(5) describes unknown options:" $extra >&2
[ -z "$missing$extra" ] || exit 1
echo "man_options: mkd.conf(5) describes all $(echo "$known" | wc -l) options"
