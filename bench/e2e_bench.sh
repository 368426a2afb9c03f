#!/usr/bin/env bash
# bench/e2e_bench.sh -- hello world end to end: MKD + PHP workers against
# nginx + PHP-FPM, in one run, on 127.0.0.1 only.
#
#   bench/e2e_bench.sh                  # about 5 minutes; run as root
#
# What it does:
#   1. installs what is missing from Debian (nginx, php8.2-fpm, php8.2-cli,
#      wrk, nghttp2-client for h2load, openssl), without letting the packages start their services,
#      and builds build-e2ebench/ (Release) if mkd or sazukari is missing;
#   2. in a temporary directory (mktemp -d, removed at the end): a
#      self-signed RSA-2048 certificate, nginx (TLS 1.3 only, keep-alive,
#      FastCGI over a Unix socket) and PHP-FPM (pm = static, N workers)
#      started by hand from bench/e2e/*.in, and mkd with the PHP backend and
#      the same N workers (N = nproc unless E2E_WORKERS), its per-address
#      handshake rate limit off (--handshake_rate=0: the benchmark makes
#      thousands of full handshakes per second from one address, which the
#      default 50/s bucket would refuse; that limit is a DoS guard, not part
#      of the cost being measured);
#   3. checks that both answer the same hello world, and what the load
#      generators really do (TLS version, resumption, requests per
#      connection, Megaki handshake counts);
#   4. measures requests/s and p50/p99 latency at concurrency 1, 8 and 32:
#        Megaki, persistent connection         sazukari --load --reuse
#        Megaki, resumed session per request   sazukari --load --resume-per-request
#        Megaki, full handshake per request    sazukari --load --new-handshake-per-request
#        nginx + PHP-FPM, HTTPS keep-alive     h2load --h1 -t C -c C, and wrk -t C -c C
#        nginx, new connection, TLS resumed    h2load --h1 -H 'Connection: close'
#        nginx, new connection, full TLS       the same against a server block with
#                                              session tickets and cache off
#      each after a warm-up, E2E_ROUNDS rounds (interleaved) of about
#      E2E_SECONDS seconds each; the table shows the median round. (wrk is
#      not used for new connections: it busy-polls SSL_connect during the
#      handshake and, with C threads on 2 cores, starves the server.)
#   5. prints a markdown table and the target verdicts (Megaki persistent
#      >= 2x nginx keep-alive requests/s, and a lower p99, against the better
#      of the two nginx keep-alive measurements), and writes them into
#      docs/PERFORMANCE.md, section "## End to end: MKD + PHP vs nginx +
#      PHP-FPM" (that section only; a "### Analysis" subsection already there
#      is kept).
#
# Environment: E2E_SECONDS (4), E2E_ROUNDS (3), E2E_CONCURRENCY ("1 8 32"),
# E2E_WORKERS (nproc), E2E_BUILD (build-e2ebench), E2E_WRITE_DOC (1),
# E2E_KEEP (0: 1 keeps the temporary directory with every log).
#
# Exit status: 0 whenever it ran, whatever the figures (benchmarks report);
# non-zero only when something could not be installed, started or run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${E2E_SECONDS:-4}
ROUNDS=${E2E_ROUNDS:-3}
CONCS=${E2E_CONCURRENCY:-"1 8 32"}
WORKERS=${E2E_WORKERS:-$(nproc)}
BUILD=${E2E_BUILD:-$ROOT/build-e2ebench}
WRITE_DOC=${E2E_WRITE_DOC:-1}
KEEP=${E2E_KEEP:-0}
MKD=$BUILD/mkd/mkd
SZ=$BUILD/libsazukari/sazukari
E2E=$ROOT/bench/e2e
DOC=$ROOT/docs/PERFORMANCE.md
SECTION="## End to end: MKD + PHP vs nginx + PHP-FPM"

# The command as run, for the record (only the variables that were set).
CMDLINE=""
for v in E2E_SECONDS E2E_ROUNDS E2E_CONCURRENCY E2E_WORKERS E2E_BUILD; do
    if [ -n "${!v:-}" ]; then CMDLINE+="$v=\"${!v}\" "; fi
done
CMDLINE+="bench/e2e_bench.sh"

log() { printf 'e2e: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$SECS$ROUNDS$WORKERS" in *[!0-9]*) die "E2E_SECONDS, E2E_ROUNDS and E2E_WORKERS must be numbers";; esac
[ "$SECS" -ge 1 ] && [ "$SECS" -le 60 ] || die "E2E_SECONDS must be 1..60"
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 9 ] || die "E2E_ROUNDS must be 1..9"
[ "$WORKERS" -ge 1 ] || die "E2E_WORKERS must be at least 1"
[ "$(id -u)" = 0 ] || die "run as root (it installs packages and runs nginx as root)"

# --- 1. dependencies ------------------------------------------------------------

POLICY_CREATED=0
TMP=""
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "$POLICY_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then
        if [ "$KEEP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v php-fpm8.2 >/dev/null 2>&1 || need+=(php8.2-fpm)
command -v php >/dev/null 2>&1 || need+=(php8.2-cli)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -r /etc/nginx/fastcgi_params ] || need+=(nginx-common)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    # The packages' maintainer scripts would start nginx on port 80 and the
    # system PHP-FPM; a policy-rc.d that denies everything prevents that.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        POLICY_CREATED=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    if ! apt-get install -y -qq "${need[@]}" >&2; then
        # nginx-light is gone from newer Debian releases: take nginx.
        need=("${need[@]/nginx-light/nginx}")
        apt-get install -y -qq "${need[@]}" >&2 || die "apt-get install ${need[*]} failed"
    fi
fi
for c in nginx php-fpm8.2 php wrk h2load openssl awk ps sort timeout; do
    command -v "$c" >/dev/null 2>&1 || die "$c is missing"
done

if [ ! -x "$MKD" ] || [ ! -x "$SZ" ]; then
    log "building $BUILD (Release)"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >&2 || die "cmake failed"
    cmake --build "$BUILD" -j2 >&2 || die "build failed"
fi
[ -x "$MKD" ] && [ -x "$SZ" ] || die "no $MKD or $SZ"

TMP=$(mktemp -d /tmp/megaki-e2e.XXXXXX)
DATE=$(date -u +%Y-%m-%d)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
HZ=$(getconf CLK_TCK)

# A free TCP port on 127.0.0.1 (the kernel picks one; nothing else binds
# 127.0.0.1 ports here in the second before nginx does).
free_port() {
    php -r '$s = stream_socket_server("tcp://127.0.0.1:0", $e, $m) or exit(1);
            $n = stream_socket_get_name($s, false); echo substr($n, strrpos($n, ":") + 1);'
}

wait_tcp() { # PORT SECONDS
    for _ in $(seq $(( $2 * 10 ))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

fill() { # TEMPLATE OUT
    sed -e "s|@TMP@|$TMP|g" -e "s|@APPDIR@|$E2E|g" -e "s|@WORKERS@|$WORKERS|g" \
        -e "s|@NGINX_WORKERS@|$(nproc)|g" -e "s|@PORT@|$NG_PORT|g" \
        -e "s|@FULL_PORT@|$NG_FULL_PORT|g" "$1" > "$2"
}

# CPU time (clock ticks) of a process and its children (workers).
tree_ticks() {
    local pids p t=0
    pids="$1 $(ps -o pid= --ppid "$1" 2>/dev/null | tr '\n' ' ')"
    for p in $pids; do
        if [ -r "/proc/$p/stat" ]; then
            t=$(( t + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0) ))
        fi
    done
    echo "$t"
}

# --- 2. nginx + PHP-FPM ------------------------------------------------------------

log "temporary directory $TMP"
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>"$TMP/openssl.log" ||
    die "openssl req failed: $(cat "$TMP/openssl.log")"

NG_PORT=$(free_port) || die "no free port"
NG_FULL_PORT=$(free_port) || die "no free port"
[ "$NG_PORT" != "$NG_FULL_PORT" ] || NG_FULL_PORT=$(free_port)
fill "$E2E/php-fpm.conf.in" "$TMP/php-fpm.conf"
fill "$E2E/nginx.conf.in" "$TMP/nginx.conf"

# -R: allow running as root (this is a throwaway benchmark instance).
php-fpm8.2 -R -F -y "$TMP/php-fpm.conf" > "$TMP/php-fpm.out" 2>&1 &
FPM_PID=$!
PIDS+=("$FPM_PID")
for _ in $(seq 100); do [ -S "$TMP/php-fpm.sock" ] && break; sleep 0.1; done
[ -S "$TMP/php-fpm.sock" ] || die "php-fpm did not start: $(cat "$TMP/php-fpm.out" "$TMP/php-fpm.log" 2>/dev/null)"

nginx -t -q -e "$TMP/nginx-error.log" -p "$TMP" -c "$TMP/nginx.conf" 2>"$TMP/nginx-t.log" ||
    die "nginx -t: $(cat "$TMP/nginx-t.log" "$TMP/nginx-error.log" 2>/dev/null)"
nginx -e "$TMP/nginx-error.log" -p "$TMP" -c "$TMP/nginx.conf" > "$TMP/nginx.out" 2>&1 &
NG_PID=$!
PIDS+=("$NG_PID")
wait_tcp "$NG_PORT" 10 && wait_tcp "$NG_FULL_PORT" 10 ||
    die "nginx did not start: $(cat "$TMP/nginx.out" "$TMP/nginx-error.log" 2>/dev/null)"

# --- 3. mkd ----------------------------------------------------------------------------

"$MKD" serve --data_dir="$TMP/mkd" --port=0 --ready_file="$TMP/mkd.port" \
    --workers="$WORKERS" --control_socket=none --handshake_rate=0 \
    > "$TMP/mkd.log" 2>&1 &
MKD_PID=$!
PIDS+=("$MKD_PID")
for _ in $(seq 200); do [ -s "$TMP/mkd.port" ] && break; sleep 0.1; done
[ -s "$TMP/mkd.port" ] || die "mkd did not start: $(tail -20 "$TMP/mkd.log")"
MK_PORT=$(tr -dc 0-9 < "$TMP/mkd.port")
MK_KEY=$TMP/mkd/server.pub.pem
# Wait for the PHP workers (the first request waits for a READY worker).
"$SZ" -k "$MK_KEY" --timeout 20000 "127.0.0.1:$MK_PORT" hello > "$TMP/mk-hello.txt" ||
    die "mkd does not answer: $(tail -20 "$TMP/mkd.log")"

php -r '$c = stream_context_create(["ssl" => ["verify_peer" => false, "verify_peer_name" => false],
        "http" => ["method" => "POST", "content" => "hello", "header" => "Content-Type: application/octet-stream"]]);
        $r = @file_get_contents("https://127.0.0.1:" . $argv[1] . "/", false, $c);
        if ($r === false) exit(1); echo $r;' "$NG_PORT" > "$TMP/ng-hello.txt" ||
    die "nginx + PHP-FPM does not answer: $(cat "$TMP/nginx-error.log" "$TMP/php-fpm.log" 2>/dev/null)"
log "mkd answers:   $(tr '\n' ' ' < "$TMP/mk-hello.txt")"
log "nginx answers: $(tr '\n' ' ' < "$TMP/ng-hello.txt")"
grep -q '^Hello, world!$' "$TMP/mk-hello.txt" || die "unexpected answer from mkd"
grep -q '^Hello, world!$' "$TMP/ng-hello.txt" || die "unexpected answer from nginx"

# What the load generators do with TLS and connections: short runs with the
# header that makes nginx log them ($ssl_session_reused, $connection,
# $connection_requests).
WRK_LUA=$E2E/request.lua
BODY=$TMP/body.txt
printf 'hello' > "$BODY"
H2=(h2load --h1 -d "$BODY" -H "Content-Type: application/octet-stream")
CK=(-H "X-E2E-Check: 1")
check() { # NAME cmd... -> a summary of what nginx logged for it
    local name=$1
    shift
    : > "$TMP/tls-check.log"
    timeout 30 "$@" > "$TMP/check-$name.txt" 2>&1 || die "$* failed: $(cat "$TMP/check-$name.txt")"
    sleep 0.3
    # (a 499 is the request in flight when wrk stops at the end of its time)
    awk '{ n++; proto[$2] = 1; ciph[$3] = 1; conns[$5] = 1; if ($4 == "reused=r") r++
           if ($7 == "status=499") cut++; else if ($7 != "status=200") bad++ }
        END { for (p in proto) ps = ps p; for (c in ciph) cs = cs c; for (c in conns) k++
              printf "%d requests on %d connections, %d of them on a resumed TLS session, %d not 200%s (%s, %s)",
                     n, k, r + 0, bad + 0, (cut ? ", " cut " cut off at the end" : ""), ps, cs }' "$TMP/tls-check.log"
}
CHECK_H2_KA=$(check h2-ka "${H2[@]}" "${CK[@]}" -n 400 -c 2 -t 2 "https://127.0.0.1:$NG_PORT/")
CHECK_WRK_KA=$(check wrk-ka wrk -t2 -c2 -d1s -s "$WRK_LUA" "${CK[@]}" "https://127.0.0.1:$NG_PORT/")
CHECK_H2_RES=$(check h2-res "${H2[@]}" "${CK[@]}" -H "Connection: close" -n 200 -c 2 -t 2 "https://127.0.0.1:$NG_PORT/")
CHECK_H2_FULL=$(check h2-full "${H2[@]}" "${CK[@]}" -H "Connection: close" -n 200 -c 2 -t 2 "https://127.0.0.1:$NG_FULL_PORT/")
CHECK_WRK_CLOSE=$(check wrk-close wrk -t2 -c2 -d1s -s "$WRK_LUA" "${CK[@]}" -H "Connection: close" "https://127.0.0.1:$NG_PORT/")
log "h2load keep-alive:                     $CHECK_H2_KA"
log "wrk keep-alive:                        $CHECK_WRK_KA"
log "h2load Connection: close:              $CHECK_H2_RES"
log "h2load Connection: close, resumption off: $CHECK_H2_FULL"
log "wrk Connection: close (not measured):  $CHECK_WRK_CLOSE"

# --- 4. measurements ------------------------------------------------------------------

RESULTS=$TMP/results.tsv      # config conc round rate p50_ms p99_ms srv_us/req cli_us/req note
HS_NOTES=$TMP/handshakes.tsv  # config conc full resumed requests
: > "$RESULTS"
: > "$HS_NOTES"

to_ms() { # wrk's "123.45us" / "1.23ms" / "1.02s" / "1.00m" -> ms
    awk -v v="$1" 'BEGIN { n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.4f", n }'
}

# timed_run "SERVER_PIDS" OUT cmd...: runs cmd with stdout in OUT; sets
# T_SRV (CPU ticks of the server process trees over the run) and T_CLI (CPU
# seconds of the load generator). Returns cmd's status.
timed_run() {
    local srv=$1 out=$2 s0=0 s1=0 p rc=0
    shift 2
    for p in $srv; do s0=$(( s0 + $(tree_ticks "$p") )); done
    { TIMEFORMAT='%U %S'; time "$@" > "$out" 2> "$out.err"; } 2> "$out.time" || rc=$?
    for p in $srv; do s1=$(( s1 + $(tree_ticks "$p") )); done
    T_SRV=$(( s1 - s0 ))
    T_CLI=$(awk 'NF == 2 { c = $1 + $2 } END { print c + 0 }' "$out.time")
    return $rc
}

# One result line: config conc round rate p50 p99 (ms) n failed note.
record() {
    awk -v cfg="$1" -v c="$2" -v r="$3" -v rate="$4" -v p50="$5" -v p99="$6" -v n="$7" \
        -v srv="$T_SRV" -v cli="$T_CLI" -v hz="$HZ" -v note="$8" \
        'BEGIN { printf "%s\t%s\t%s\t%.1f\t%.4f\t%.4f\t%.1f\t%.1f\t%s\n", cfg, c, r, rate, p50, p99,
                        srv / hz / n * 1e6, cli / n * 1e6, note }' >> "$RESULTS"
}

# Requests for a measured run: the warm-up's rate x E2E_SECONDS.
count_for() { # RATE CONC
    awk -v r="$1" -v c="$2" -v s="$SECS" 'BEGIN { n = int(r * s); if (n < 20 * c) n = 20 * c
        if (n > 5000000) n = 5000000; print n }'
}

# Megaki: sazukari takes a request count, not a duration, so a short run of
# the same kind first (the warm-up) measures the rate. -c C is C client
# threads, each with its own connection, one request in flight on it.
megaki_run() { # MODE CONC ROUND
    local mode=$1 c=$2 r=$3 flag n0 rate n out note="" lim rc=0
    case $mode in
        mk-reuse) flag=--reuse; n0=$(( 2000 + 200 * c ));;
        mk-resume) flag=--resume-per-request; n0=$(( 300 + 20 * c ));;
        mk-full) flag=--new-handshake-per-request; n0=$(( 200 + 10 * c ));;
    esac
    out=$TMP/$mode-c$c-r$r
    lim=$(( SECS * 8 + 60 ))
    timeout "$lim" "$SZ" -q -k "$MK_KEY" --load -n "$n0" -c "$c" $flag "127.0.0.1:$MK_PORT" hello \
        > "$out.warm" 2>&1 || log "warm-up $mode c=$c: exit status $? $(grep -E '^errors' "$out.warm" || true)"
    rate=$(awk '/^rate:/ { print $2 }' "$out.warm")
    [ -n "$rate" ] || die "sazukari $flag -c $c did not run: $(cat "$out.warm")"
    n=$(count_for "$rate" "$c")
    timed_run "$MKD_PID" "$out" timeout "$lim" "$SZ" -q -k "$MK_KEY" --load -n "$n" -c "$c" $flag \
        "127.0.0.1:$MK_PORT" hello || rc=$?
    [ "$rc" = 0 ] || note="sazukari exit status $rc: $(grep -E '^(requests|errors)' "$out" | tr -s ' ' | tr '\n' ' ')"
    local ok failed p50 p99
    ok=$(awk '/^requests:/ { print $2 }' "$out")
    failed=$(awk '/^requests:/ { print $4 }' "$out")
    rate=$(awk '/^rate:/ { print $2 }' "$out")
    p50=$(awk '/^latency/ { print $4 }' "$out")
    p99=$(awk '/^latency/ { print $8 }' "$out")
    [ -n "$rate" ] && [ -n "$ok" ] && [ "$ok" -gt 0 ] || die "sazukari $flag -c $c: no figures: $(cat "$out" "$out.err")"
    record "$mode" "$c" "$r" "$rate" "$p50" "$p99" $(( ok + failed )) "$note"
    awk -v m="$mode" -v c="$c" -v n=$(( ok + failed )) '/^handshakes:/ { print m "\t" c "\t" $2 "\t" $4 "\t" n }' \
        "$out" >> "$HS_NOTES"
}

# h2load (HTTP/1.1 over TLS): -t C -c C, C threads with one client each,
# like sazukari; a warm-up run of the same kind measures the rate. Latency
# percentiles come from its per-request log, nearest rank as sazukari.
h2_run() { # MODE CONC ROUND
    local mode=$1 c=$2 r=$3 port=$NG_PORT hdr=() n0 rate n out note="" lim
    case $mode in
        ng-ka) n0=$(( 2000 + 200 * c ));;
        ng-res) hdr=(-H "Connection: close"); n0=$(( 300 + 20 * c ));;
        ng-full) hdr=(-H "Connection: close"); n0=$(( 200 + 10 * c )); port=$NG_FULL_PORT;;
    esac
    out=$TMP/$mode-c$c-r$r
    lim=$(( SECS * 8 + 60 ))
    timeout "$lim" "${H2[@]}" "${hdr[@]}" -n "$n0" -c "$c" -t "$c" "https://127.0.0.1:$port/" \
        > "$out.warm" 2>&1 || die "h2load warm-up failed: $(cat "$out.warm")"
    rate=$(awk '/^finished in/ { print $4 }' "$out.warm")
    [ -n "$rate" ] || die "h2load did not run: $(cat "$out.warm")"
    n=$(count_for "$rate" "$c")
    timed_run "$NG_PID $FPM_PID" "$out" timeout "$lim" "${H2[@]}" "${hdr[@]}" -n "$n" -c "$c" -t "$c" \
        --log-file="$out.lat" "https://127.0.0.1:$port/" || die "h2load failed: $(cat "$out" "$out.err")"
    local ok bad p50 p99
    rate=$(awk '/^finished in/ { print $4 }' "$out")
    ok=$(awk '/^requests:/ { print $8 }' "$out")
    bad=$(awk '/^requests:/ { print $10 + $12 + $14 } /^status codes:/ { print $5 + $7 + $9 }' "$out" | awk '{ s += $1 } END { print s + 0 }')
    [ -n "$rate" ] && [ -n "$ok" ] && [ "$ok" -gt 0 ] || die "h2load: no figures: $(cat "$out")"
    read -r p50 p99 < <(awk -F'\t' '{ print $3 }' "$out.lat" | sort -n | awk '{ v[NR] = $1 }
        function rank(p,   k) { k = int(p / 100 * NR + 0.999999); if (k < 1) k = 1; if (k > NR) k = NR; return v[k] }
        END { printf "%.4f %.4f\n", rank(50) / 1000, rank(99) / 1000 }')
    [ "$bad" = 0 ] || note="h2load: $(grep -E '^(requests|status codes):' "$out" | tr '\n' ' ')"
    record "$mode" "$c" "$r" "$rate" "$p50" "$p99" "$n" "$note"
}

# wrk, keep-alive only: -t C -c C, a 1 s warm-up, then E2E_SECONDS.
wrk_run() { # MODE CONC ROUND
    local mode=$1 c=$2 r=$3 out note="" p50 p99 rate n errs
    out=$TMP/$mode-c$c-r$r
    timeout 30 wrk -t "$c" -c "$c" -d 1s -s "$WRK_LUA" "https://127.0.0.1:$NG_PORT/" \
        > "$out.warm" 2>&1 || die "wrk warm-up failed: $(cat "$out.warm")"
    timed_run "$NG_PID $FPM_PID" "$out" timeout $(( SECS + 30 )) wrk -t "$c" -c "$c" -d "${SECS}s" \
        --latency -s "$WRK_LUA" "https://127.0.0.1:$NG_PORT/" || die "wrk failed: $(cat "$out" "$out.err")"
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    rate=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    n=$(awk '/ requests in / { print $1 }' "$out")
    [ -n "$rate" ] && [ -n "$n" ] && [ "$n" -gt 0 ] || die "wrk: no figures: $(cat "$out")"
    errs=$(grep -E 'Socket errors|Non-2xx' "$out" | tr -s ' ' | tr '\n' ' ' || true)
    [ -z "$errs" ] || note="wrk: $errs"
    record "$mode" "$c" "$r" "$rate" "$p50" "$p99" "$n" "$note"
}

MODES="mk-reuse ng-ka ng-ka-wrk mk-resume ng-res mk-full ng-full"
log "measuring: $ROUNDS round(s) x concurrency {$CONCS} x 7 configurations, about ${SECS}s each after a warm-up"
T_BEGIN=$(date +%s)
for r in $(seq "$ROUNDS"); do
    for c in $CONCS; do
        for mode in $MODES; do
            case $mode in
                mk-*) megaki_run "$mode" "$c" "$r";;
                ng-ka-wrk) wrk_run "$mode" "$c" "$r";;
                ng-*) h2_run "$mode" "$c" "$r";;
            esac
            tail -1 "$RESULTS" | awk -F'\t' '{ printf "e2e: round %s  %-9s c=%-3s %9.0f req/s  p50 %.3f ms  p99 %.3f ms  %s\n", $3, $1, $2, $4, $5, $6, $9 }' >&2
        done
    done
done
T_END=$(date +%s)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
kill -0 "$MKD_PID" 2>/dev/null || die "mkd died during the run: $(tail -20 "$TMP/mkd.log")"
kill -0 "$NG_PID" 2>/dev/null || die "nginx died during the run"

# --- 5. report ----------------------------------------------------------------------------

# The median round of each (configuration, concurrency), by requests/s; its
# latencies and CPU figures go with it.
SUMMARY=$TMP/summary.tsv  # cfg conc rate min max p50 p99 srv cli notes
sort -t$'\t' -k1,1 -k2,2n -k4,4g "$RESULTS" | awk -F'\t' -v OFS='\t' '
    function flush() { if (k == "") return
        split(rows[int((cnt + 1) / 2)], f, "\t")
        print f[1], f[2], f[4], lo, hi, f[5], f[6], f[7], f[8], notes
    }
    { key = $1 SUBSEP $2
      if (key != k) { flush(); k = key; cnt = 0; notes = ""; lo = $4 }
      rows[++cnt] = $0; hi = $4
      if ($9 != "") notes = notes "round " $3 ": " $9 " " }
    END { flush() }' > "$SUMMARY"

label() {
    case $1 in
        mk-reuse) echo "Megaki, persistent connection";;
        ng-ka) echo "nginx + PHP-FPM, keep-alive (h2load)";;
        ng-ka-wrk) echo "nginx + PHP-FPM, keep-alive (wrk)";;
        mk-resume) echo "Megaki, new connection per request, resumed session";;
        ng-res) echo "nginx + PHP-FPM, new connection per request, resumed TLS session (a)";;
        mk-full) echo "Megaki, new connection per request, full handshake";;
        ng-full) echo "nginx + PHP-FPM, new connection per request, full TLS handshake (a)";;
    esac
}

AWKFMT='function num(x,   s) { x = sprintf("%.0f", x); s = ""
            while (length(x) > 3) { s = "," substr(x, length(x) - 2) s; x = substr(x, 1, length(x) - 3) }
            return x s }
        function lat(ms) { if (ms < 1) return sprintf("%.0f µs", ms * 1000)
            if (ms < 10) return sprintf("%.2f ms", ms); return sprintf("%.1f ms", ms) }'

TABLE=$TMP/table.md
{
    echo "| configuration | concurrency | requests/s | range over $ROUNDS rounds | p50 | p99 | mean (concurrency ÷ req/s) | server CPU per request | load generator CPU per request |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for mode in $MODES; do
        awk -F'\t' -v m="$mode" -v lab="$(label "$mode")" "$AWKFMT"'
            $1 == m { printf "| %s | %s | %s | %s–%s | %s | %s | %s | %.0f µs | %.0f µs |\n", lab, $2, num($3),
                      num($4), num($5), lat($6), lat($7), lat($2 / $3 * 1000), $8, $9 }' "$SUMMARY"
    done
} > "$TABLE"

get() { awk -F'\t' -v m="$1" -v c="$2" -v i="$3" '$1 == m && $2 == c { print $i }' "$SUMMARY"; }
VERDICT=$TMP/verdict.md
ALL=PASS
{
    echo "Target: Megaki on persistent connections at least 2× the requests/s of nginx + PHP-FPM with"
    echo "keep-alive, and a lower p99. Judged against the better nginx figure of the two load generators"
    echo "(the higher requests/s, the lower p99)."
    echo
    echo "| concurrency | Megaki persistent ÷ nginx keep-alive, req/s | result | p99, Megaki vs nginx | result | resumed per request, Megaki ÷ nginx, req/s | full handshake per request, Megaki ÷ nginx, req/s |"
    echo "|---|---|---|---|---|---|---|"
    for c in $CONCS; do
        line=$(awk -F'\t' -v c="$c" "$AWKFMT"'
            $2 == c { rate[$1] = $3; p99[$1] = $7 }
            END { nr = rate["ng-ka"]; if (rate["ng-ka-wrk"] > nr) nr = rate["ng-ka-wrk"]
                  np = p99["ng-ka"]; if (p99["ng-ka-wrk"] < np) np = p99["ng-ka-wrk"]
                  x = rate["mk-reuse"] / nr; a = (x >= 2) ? "PASS" : "MISS"; b = (p99["mk-reuse"] < np) ? "PASS" : "MISS"
                  printf "| %s | %.2f× (%s vs %s) | **%s** | %s vs %s | **%s** | %.2f× | %.2f× |\n", c, x,
                         num(rate["mk-reuse"]), num(nr), a, lat(p99["mk-reuse"]), lat(np), b,
                         rate["mk-resume"] / rate["ng-res"], rate["mk-full"] / rate["ng-full"] }' "$SUMMARY")
        echo "$line"
        case $line in *MISS*) ALL=MISS;; esac
    done
    echo
    echo "Overall (every concurrency, both conditions): **$ALL**."
} > "$VERDICT"

HS=$(awk -F'\t' '{ f[$1] += $3; r[$1] += $4; n[$1] += $5 }
    END { printf "`--reuse`: %d full + %d resumed handshakes for %d requests; `--resume-per-request`: %d full + %d resumed for %d; `--new-handshake-per-request`: %d full + %d resumed for %d",
          f["mk-reuse"], r["mk-reuse"], n["mk-reuse"], f["mk-resume"], r["mk-resume"], n["mk-resume"], f["mk-full"], r["mk-full"], n["mk-full"] }' "$HS_NOTES")

CPU=$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
MKD_VER=$("$MKD" --version 2>&1 | head -1 || true)
NG_VER=$(nginx -v 2>&1 | sed 's/^nginx version: nginx\///' || true)
FPM_VER=$(php-fpm8.2 -v 2>/dev/null | head -1 | awk '{ print "PHP-FPM", $2 }' || true)
OPCACHE=$(php-fpm8.2 -m 2>/dev/null || true)
case $OPCACHE in *"Zend OPcache"*) OPCACHE=loaded;; *) OPCACHE="not loaded";; esac
WRK_VER=$(wrk -v 2>&1 | head -1 | awk '{ print $2 }' || true)
H2_VER=$(h2load --version 2>&1 | head -1 | awk '{ print $NF }' || true)
SSL_VER=$(openssl version | awk '{ print $1, $2 }')
MINUTES=$(awk -v s="$(( T_END - T_BEGIN ))" 'BEGIN { printf "%.1f", s / 60 }')

SEC=$TMP/section.md
{
    echo "$SECTION"
    echo
    echo "Command (from the project root, as root; it builds \`build-e2ebench\` with"
    echo "\`cmake -S . -B build-e2ebench -DCMAKE_BUILD_TYPE=Release && cmake --build build-e2ebench -j2\`"
    echo "if mkd or sazukari is missing, and installs nginx, php8.2-fpm, wrk and h2load"
    echo "(nghttp2-client) from Debian if they are missing):"
    echo
    echo "    $CMDLINE"
    echo
    echo "Result ($DATE; $(nproc) cores, $CPU, kernel $(uname -r); load average"
    echo "$LOAD_START at the start and $LOAD_END at the end, other jobs sharing the machine;"
    echo "measuring took $MINUTES min). $MKD_VER with $WORKERS PHP workers (PHP 8.2 CLI) and"
    echo "$(nproc) crypto threads; nginx $NG_VER with $(nproc) worker processes and $FPM_VER,"
    echo "\`pm = static\` with $WORKERS workers, OPcache $OPCACHE; h2load $H2_VER, wrk $WRK_VER;"
    echo "$SSL_VER. Each figure is the median of $ROUNDS rounds of about ${SECS} s (the rounds"
    echo "interleave all configurations), with the range beside it."
    echo
    cat "$TABLE"
    echo
    echo "(a) h2load starts a request's clock when it sends the request, after the TCP"
    echo "connect and the TLS handshake, so these rows' p50 and p99 leave the handshake"
    echo "out; sazukari's per-request latencies include connect and handshake. The mean"
    echo "column (concurrency ÷ requests/s, Little's law for a closed loop) includes"
    echo "everything for every row: compare that one for new connections."
    awk -F'\t' '$10 != "" { printf "\nErrors: %s c=%s: %s", $1, $2, $10; e = 1 } END { if (e) print "" }' "$SUMMARY"
    echo
    cat "$VERDICT"
    echo
    echo "How it was measured:"
    echo
    echo "- Both servers run the same hello world: \`apps/hello/app.php\` under mkd,"
    echo "  \`bench/e2e/index.php\` (the same code, reading the body from"
    echo "  \`php://input\` and the context from nginx's FastCGI parameters) under"
    echo "  PHP-FPM. Every request is the 5-byte body \`hello\` (a POST for nginx) and"
    echo "  every answer the ~95-byte greeting."
    echo "- Megaki: \`sazukari --load -q -n N -c C\` with \`--reuse\` (one connection per"
    echo "  client thread for the whole run), \`--resume-per-request\` (a new TCP"
    echo "  connection per request that resumes the previous session with its ticket:"
    echo "  no RSA) or \`--new-handshake-per-request\` (a new connection and a full"
    echo "  RSA-2048 handshake per request). sazukari runs C threads, one connection"
    echo "  each, one request in flight per connection. N is the rate of a warm-up run"
    echo "  of the same kind × ${SECS} s. Handshakes counted by sazukari over the"
    echo "  measured runs: $HS."
    echo "- nginx + PHP-FPM: \`h2load --h1 -n N -c C -t C\` (C threads with one client"
    echo "  each, like sazukari; N from a warm-up run as for sazukari; percentiles from"
    echo "  its per-request \`--log-file\`, nearest rank like sazukari's), with"
    echo "  \`-H 'Connection: close'\` for a new connection per request; and for"
    echo "  keep-alive also \`wrk -t C -c C -d ${SECS}s --latency\` after a 1 s warm-up. nginx:"
    echo "  TLS 1.3 only, an RSA-2048 self-signed certificate, \`keepalive_requests"
    echo "  1000000\` (a keep-alive connection lasts the whole run), \`fastcgi_pass\` to"
    echo "  PHP-FPM's Unix socket (\`bench/e2e/nginx.conf.in\`, \`bench/e2e/php-fpm.conf.in\`)."
    echo "  The full-handshake rows use a second server block with \`ssl_session_tickets"
    echo "  off\` and \`ssl_session_cache off\`."
    echo "- What the load generators really did, from nginx's log of short check runs"
    echo "  (\`\$ssl_session_reused\`, \`\$connection\`, \`\$connection_requests\`):"
    echo "  - h2load keep-alive: $CHECK_H2_KA;"
    echo "  - wrk keep-alive: $CHECK_WRK_KA;"
    echo "  - h2load with \`Connection: close\`: $CHECK_H2_RES;"
    echo "  - the same against the server block without resumption: $CHECK_H2_FULL;"
    echo "  - wrk with \`Connection: close\` (not used for the figures): $CHECK_WRK_CLOSE."
    echo
    echo "  So both clients resume TLS 1.3 sessions (\`psk_dhe_ke\`: a fresh X25519"
    echo "  exchange, no certificate, no RSA) whenever the server offers tickets, and"
    echo "  the full-handshake rows do ECDHE + an RSA-2048 signature per connection."
    echo "  Megaki's resumed handshake likewise does X25519 without RSA, its full one"
    echo "  an RSA-2048 decryption. wrk is not used for new connections because it"
    echo "  busy-polls during the TLS handshake and, with C threads on $(nproc) cores,"
    echo "  starves nginx (see the analysis below)."
    echo "- mkd runs with \`--workers=$WORKERS --handshake_rate=0 --control_socket=none\`:"
    echo "  the per-address full-handshake limit (default 50/s, burst 100) is off,"
    echo "  because all the benchmark's handshakes come from 127.0.0.1 and the limit"
    echo "  is a denial-of-service guard, not part of the cost measured."
    echo "- Server CPU per request: utime + stime of the server processes (mkd and its"
    echo "  PHP workers; nginx's master and workers plus PHP-FPM's master and workers)"
    echo "  from /proc before and after the measured run, divided by the requests. Load"
    echo "  generator CPU per request: the user + system time of sazukari, h2load or wrk."
    echo "- Everything runs on the same $(nproc)-core machine: the load generator competes"
    echo "  with the server for the cores, so requests/s are those of server and client"
    echo "  together (the CPU columns show how the time splits), and with other jobs on"
    echo "  the machine figures move by 10–30 % between runs."
} > "$SEC"

echo
cat "$TABLE"
echo
cat "$VERDICT"
echo
echo "h2load keep-alive: $CHECK_H2_KA"
echo "wrk keep-alive: $CHECK_WRK_KA"
echo "h2load Connection: close: $CHECK_H2_RES"
echo "h2load Connection: close, server without resumption: $CHECK_H2_FULL"
echo "Megaki handshakes: $HS"

if [ "$WRITE_DOC" = 1 ]; then
    [ -f "$DOC" ] || printf '# Performance\n' > "$DOC"
    # Replace only our section (up to the next "## " heading), keeping a
    # hand-written "### Analysis" subsection of it if there is one.
    awk -v sec="$SECTION" -v newfile="$SEC" '
        function emit(   l) { while ((getline l < newfile) > 0) print l; close(newfile)
                              sub(/\n+$/, "", keep); if (keep != "") printf "\n%s\n", keep; done = 1 }
        $0 == sec { insec = 1; next }
        insec && /^## / { insec = 0; emit(); print ""; print; next }
        insec { if ($0 ~ /^### Analysis/) inan = 1
                if (inan) keep = keep $0 "\n"
                next }
        { print }
        END { if (insec) emit(); else if (!done) { print ""; emit() } }' "$DOC" > "$TMP/PERFORMANCE.md"
    cat "$TMP/PERFORMANCE.md" > "$DOC"
    log "wrote the section \"$SECTION\" in $DOC"
fi
exit 0
