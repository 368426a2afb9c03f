#!/usr/bin/env bash
# Regenerate the protocol test vectors after an intended wire change, and
# splice them into docs/PROTOCOL.md §11.2. Review the diff: any change here is
# a change of the wire protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
cmake --build "$build" --target test_vectors >/dev/null
MK_WRITE_VECTORS=1 "$build/libmegaki/tests/test_vectors" >/dev/null 2>&1 || true
python3 - <<'PY'
import re
spec = open("docs/PROTOCOL.md").read()
vec = open("tests/vectors/protocol-v2.txt").read()
begin, end = "<!-- vectors:begin -->\n```\n", "```\n<!-- vectors:end -->"
if "@@VECTORS@@" in spec:
    spec = spec.replace("```\n@@VECTORS@@\n```\n", begin + vec + end + "\n")
else:
    i = spec.index(begin) + len(begin)
    j = spec.index(end)
    spec = spec[:i] + vec + spec[j:]
open("docs/PROTOCOL.md", "w").write(spec)
PY
"$build/libmegaki/tests/test_vectors"
