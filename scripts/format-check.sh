#!/usr/bin/env bash
# Check that every C source and header the repository tracks is formatted
# as .clang-format says (ctest "format_check"). Prints the files that are
# not, with the command that fixes them; exits 1 if any.
set -uo pipefail
cd "$(dirname "$0")/.."
fmt=${CLANG_FORMAT:-clang-format}
if ! command -v "$fmt" >/dev/null; then
  echo "format-check: $fmt not found (apt-get install clang-format)" >&2
  exit 1
fi
# The files git tracks; outside a checkout, every C file of the sources.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.c' '*.h' | grep -v '/corpus/')
else
  mapfile -t files < <(find include libmegaki libsazukari mkd bindings tests \
    fuzz bench examples -name '*.[ch]' -not -path '*/corpus/*' | sort)
fi
bad=()
for f in "${files[@]}"; do
  "$fmt" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  printf 'not formatted: %s\n' "${bad[@]}"
  echo "fix with: $fmt -i ${bad[*]}"
  exit 1
fi
echo "format-check: ${#files[@]} files formatted as .clang-format says"
