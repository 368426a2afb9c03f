#!/usr/bin/env bash
# ctest "unit_verify": `systemd-analyze verify` on the unit as `cmake
# --install` installs it, so that the paths it names (mkd, its manual
# pages) are those of the installation. Skipped (exit 77) without
# systemd-analyze.
#   unit_verify.sh BUILD_DIR
set -euo pipefail
build=$1
if ! command -v systemd-analyze >/dev/null; then
  echo "skipped: systemd-analyze is not installed (Debian package systemd)"
  exit 77
fi
tmp=$(mktemp -d /tmp/megaki-unit-verify.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" ||
  { cat "$tmp/install.log"; exit 1; }
unit=$tmp/prefix/lib/systemd/system/mkd.service
grep -q "^ExecStart=$tmp/prefix/sbin/mkd " "$unit" ||
  { echo "unit_verify: ExecStart does not name the installed mkd" >&2; exit 1; }
# verify runs man(1) for Documentation=man:...: the installed pages only.
MANPATH=$tmp/prefix/share/man SYSTEMD_LOG_LEVEL=notice \
  systemd-analyze verify "$unit"
echo "unit_verify: systemd-analyze accepts the installed unit"
