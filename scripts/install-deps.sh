#!/usr/bin/env bash
# Install the Debian 12 packages Megaki needs to build, test and run.
# Used by the README's commands and by CI. Safe to run again: it only calls
# apt-get when something is missing.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config   # toolchain
  libssl-dev                         # OpenSSL 3 libcrypto (EVP)
  libuv1-dev                         # event loop of the daemon
  libcmocka-dev                      # C unit test framework
  libcjson-dev                       # reads the Wycheproof JSON vectors in tests
  php-cli                            # PHP 8.2 workers (Arcangelo)
  openjdk-17-jdk-headless            # JNI binding and its tests
  clang libclang-rt-14-dev           # libFuzzer and sanitizer runtimes
  valgrind                           # leak checks in the test suite
  clang-format                       # the tree's formatting check (ctest format_check)
  stress-ng                          # scripts/test-under-load.sh
  openssl                            # `openssl speed` baseline in benchmarks
  procps                             # ps/pkill used by integration tests
  dpkg-dev                           # dpkg-shlibdeps: the .deb's library dependencies (cpack)
  adduser                            # the package's postinst creates its users (package test)
  systemd man-db                     # systemd-analyze verify of the installed unit (it runs man)
  python3 python3-prometheus-client  # the Prometheus parser that checks /metrics (test_observe.py)
  haproxy                            # the load balancer in front of three nodes (test_haproxy.c, PROXY protocol)
  php8.2-fpm                         # the real PHP-FPM behind backend = fastcgi (test_fastcgi.py)
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
