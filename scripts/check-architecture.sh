#!/usr/bin/env bash
# docs/ARCHITECTURE.md is the picture of the code: check that it and the
# tree agree (ctest "architecture_check"). Every directory of mkd/ must be
# drawn in its tree, every source file of a room named, and every target of
# cmake/MegakiArrows.cmake's table in its table of arrows.
set -uo pipefail
cd "$(dirname "$0")/.."
doc=docs/ARCHITECTURE.md
fail=0
missing() { echo "docs/ARCHITECTURE.md does not mention $1"; fail=1; }

for d in mkd/*/; do
  d=${d%/}; d=${d#mkd/}
  grep -qE "(├──|└──) $d/" "$doc" || missing "the room mkd/$d/ in its tree"
done
for f in $(find mkd -name '*.[ch]' -not -path '*/tests/*' | sort); do
  b=$(basename "$f"); stem=${b%.*}
  grep -qE "(^|[^A-Za-z0-9_])($b|$stem\.c/\.h)([^A-Za-z0-9_]|$)" "$doc" ||
    missing "$f"
done
for t in $(sed -n '/^set(MK_ARROWS/,/^)/s/^  "\([a-z_]*\)|.*/\1/p' \
    cmake/MegakiArrows.cmake); do
  case $t in megaki_obj | sazukari_obj | sazukari_cli | sazukari_jni) continue ;; esac
  grep -q "\`$t\`" "$doc" || missing "the target $t"
done
[ $fail -eq 0 ] && echo "architecture-check: docs/ARCHITECTURE.md agrees with the tree"
exit $fail
