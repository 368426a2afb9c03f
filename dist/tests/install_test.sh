#!/usr/bin/env bash
# ctest "install": `cmake --install` into a temporary prefix, then what a
# user of the installed tree does with it. The C example is built against
# the installed headers and libraries twice, with pkg-config and with
# find_package(Megaki), and each build runs against the test server (a
# handshake, requests, a resumption); the installed mkd finds the
# application and Arcangelo installed with it (and the build tree's mkd
# those of the build tree), and the installed sazukari runs.
#   install_test.sh BUILD_DIR SOURCE_DIR TESTSERVER
# MK_EXAMPLE_FLAGS: compiler flags the build's libraries need (a
# sanitizer build's -fsanitize=...).
set -euo pipefail
build=$1 src=$2 testserver=$3
flags=${MK_EXAMPLE_FLAGS:-}
tmp=$(mktemp -d /tmp/megaki-install-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pfx=$tmp/prefix
fail() { echo "install_test: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$pfx" >"$tmp/install.log" ||
  { cat "$tmp/install.log"; fail "cmake --install failed"; }
libdir=$(sed -n 's/^libdir=//p' "$pfx"/lib*/pkgconfig/sazukari.pc)
[ -d "$libdir" ] || fail "sazukari.pc names libdir $libdir, which is missing"
for f in sbin/mkd bin/sazukari include/sazukari.h include/megaki.h \
  share/man/man8/mkd.8 share/man/man5/mkd.conf.5 share/man/man1/sazukari.1 \
  share/megaki/apps/hello/app.php share/megaki/arcangelo/bin/arcangelo.php; do
  [ -e "$pfx/$f" ] || fail "$f was not installed"
done
for so in libmegaki libsazukari; do
  soname=$(objdump -p "$libdir/$so.so" | awk '$1 == "SONAME" { print $2 }')
  [ "$soname" = "$so.so.2" ] || fail "$so.so: SONAME '$soname', not $so.so.2"
  [ -f "$libdir/$so.a" ] || fail "$so.a was not installed"
done

# The installed mkd's defaults name the installed files.
"$pfx/sbin/mkd" config >"$tmp/config" || fail "installed mkd config failed"
grep -qx "app = $pfx/share/megaki/apps/hello/app.php" "$tmp/config" ||
  fail "installed mkd's app is not the installed one: $(grep '^app ' "$tmp/config")"
grep -qx "arcangelo = $pfx/share/megaki/arcangelo/bin/arcangelo.php" \
  "$tmp/config" || fail "installed mkd's arcangelo is not the installed one"
"$pfx/bin/sazukari" --version >/dev/null || fail "installed sazukari --version"
# And the build tree's mkd finds them in the build tree's share/megaki,
# which links to the source: mkd runs from the build tree uninstalled.
real_build=$(cd "$build" && pwd -P) # mkd resolves its own path
for key in app arcangelo; do
  path=$("$build/mkd/mkd" config | sed -n "s/^$key = //p")
  case $path in "$real_build"/share/megaki/*) ;; *) fail "build tree's mkd: $key = $path" ;; esac
  [ -f "$path" ] || fail "build tree's mkd: $key = $path, which is missing"
done

# The example, against the installed tree only: pkg-config ...
export PKG_CONFIG_PATH=$libdir/pkgconfig
# shellcheck disable=SC2046 # word splitting is what pkg-config wants
cc $flags -o "$tmp/example-pc" "$src/examples/client_example.c" \
  $(pkg-config --cflags --libs sazukari) || fail "pkg-config build failed"
# (ldd into a file: grep -q would stop reading early, and pipefail would
# count ldd's SIGPIPE as a failure.)
LD_LIBRARY_PATH=$libdir ldd "$tmp/example-pc" >"$tmp/ldd-pc"
grep -q "$libdir/libsazukari.so.2" "$tmp/ldd-pc" ||
  fail "the pkg-config build does not use the installed libsazukari"
(cd "$src" && LD_LIBRARY_PATH=$libdir "$testserver" --exec "$tmp/example-pc" \
  127.0.0.1 {port} tests/vectors/keys/server2048.pub.pem) >"$tmp/run-pc" 2>&1 ||
  { cat "$tmp/run-pc"; fail "the pkg-config build failed against the test server"; }
grep -q "resumed: yes" "$tmp/run-pc" || { cat "$tmp/run-pc"; fail "no resumption (pkg-config)"; }

# ... and CMake's find_package(Megaki) (no LD_LIBRARY_PATH: CMake gives
# the program the installed library's directory as its RUNPATH).
cmake -S "$src/dist/tests/find_package" -B "$tmp/fp" -DCMAKE_PREFIX_PATH="$pfx" \
  -DEXAMPLE_SOURCE="$src/examples/client_example.c" -DCMAKE_C_FLAGS="$flags" >"$tmp/fp.log" 2>&1 &&
  cmake --build "$tmp/fp" >>"$tmp/fp.log" 2>&1 ||
  { cat "$tmp/fp.log"; fail "the find_package build failed"; }
ldd "$tmp/fp/client_example" >"$tmp/ldd-fp"
grep -q "$libdir/libsazukari.so.2" "$tmp/ldd-fp" ||
  fail "the find_package build does not use the installed libsazukari"
(cd "$src" && "$testserver" --exec "$tmp/fp/client_example" \
  127.0.0.1 {port} tests/vectors/keys/server2048.pub.pem) >"$tmp/run-fp" 2>&1 ||
  { cat "$tmp/run-fp"; fail "the find_package build failed against the test server"; }
grep -q "resumed: yes" "$tmp/run-fp" || { cat "$tmp/run-fp"; fail "no resumption (find_package)"; }
echo "install_test: installed, built with pkg-config and find_package, ran both"
