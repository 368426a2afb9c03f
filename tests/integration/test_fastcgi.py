#!/usr/bin/python3
"""test_fastcgi.py -- backend = fastcgi against the real PHP-FPM.

The real mkd on loopback, driven by the real sazukari CLI, in front of
pools of Debian's php-fpm8.2 that this test configures and starts itself
(each in a temporary directory: its own configuration, pid file, log and
socket; `-F` in the foreground, stopped by its pid):

  hello        apps/hello/fpm.php serves the hello world on one kept-alive
               connection; the context
               parameters (REMOTE_ADDR, MEGAKI_SESSION_ID, MEGAKI_KEY_ID,
               MEGAKI_REQUEST_ID) reach the script; a PHP warning on
               FastCGI's stderr is logged by mkd at warn
  big          1 MiB request and 1 MiB answer (max_message); an answer
               past max_message is the error "application"
  killed       with fastcgi_max_conns = 1 and that connection busy, a
               request is refused "overloaded" at once; the FPM worker
               running the busy one is SIGKILLed: its client gets an
               error ("internal"), the next request is served
  restart      FPM stopped: requests are refused "overloaded" at once;
               started again: served again (ejection expires)
  silent       an upstream that accepts and never answers (a socket this
               test holds): "timeout"; mkd sent ABORT_REQUEST and closed
  failover     two pools, one stopped under load from several clients:
               every request succeeds or fails cleanly, none hangs, none
               runs twice, and the other pool serves what follows
  reload       SIGHUP with a new fastcgi_upstreams: requests go to the
               new pool
  config       a bad upstream list or no script: refused by name

Usage (ctest runs it): test_fastcgi.py MKD SAZUKARI PHP_FPM SRC_DIR
Every wait polls with a generous deadline (TL_TIMEOUT_SCALE scales it,
MKT_SLOW_BUILD=1 by 4 more); everything started is stopped by its pid.
"""
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

MKD, SAZUKARI, FPM, SRC = sys.argv[1:5]
APPS = os.path.join(SRC, "tests", "integration", "apps")
FRONT = os.path.join(SRC, "apps", "hello", "fpm.php")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from mkt import SCALE, poll, stop_proc  # noqa: E402 (tests/lib/mkt.py)
ROOT = os.geteuid() == 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)  # FPM's workers read the scripts in it
    return d


class Fpm:
    """One php-fpm master with one pool, listening on a Unix socket in its
    own directory, or on 127.0.0.1:port."""

    def __init__(self, stack, app, children=4, tcp=False):
        self.dir = tmpdir("mkt-fpm.")
        self.proc = None
        stack.callback(self.cleanup)
        for f in ("lib.php", "sleep.php", "kill.php"):
            shutil.copy(os.path.join(APPS, f), self.dir)
        self.port = free_port() if tcp else None
        self.sock = os.path.join(self.dir, "fpm.sock")
        self.listen = "127.0.0.1:%d" % self.port if tcp else self.sock
        self.upstream = self.listen if tcp else "unix:" + self.sock
        self.app = app
        self.children = children
        self.proc = None
        self.start()

    def app_path(self, name):
        return os.path.join(self.dir, name)

    def start(self):
        user = "user = root\ngroup = root\n" if ROOT else ""
        app = ("env[MEGAKI_APP] = %s\n" % self.app_path(self.app)
               if self.app else "")
        with open(os.path.join(self.dir, "fpm.conf"), "w") as f:
            f.write("[global]\npid = %s/fpm.pid\nerror_log = %s/fpm.log\n"
                    "daemonize = no\n[t]\nlisten = %s\n%s"
                    "pm = static\npm.max_children = %d\n"
                    "catch_workers_output = yes\nclear_env = yes\n%s"
                    "php_admin_flag[log_errors] = on\n"
                    "php_admin_flag[display_errors] = off\n"
                    % (self.dir, self.dir, self.listen, user, self.children,
                       app))
        args = [FPM, "-F", "-y", os.path.join(self.dir, "fpm.conf"),
                "-p", self.dir] + (["-R"] if ROOT else [])
        self.out = open(os.path.join(self.dir, "fpm.out"), "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=self.out)
        poll("php-fpm's workers", lambda: len(self.workers()) ==
             self.children)

    def workers(self):
        """The pids of this master's children."""
        out = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % p) as f:
                    st = f.read()
            except OSError:
                continue
            if int(st.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                out.append(int(p))
        return out

    def stop(self):
        if self.proc is not None:
            stop_proc(self.proc)
            self.out.close()
        self.proc = None

    def executed(self):
        try:
            with open(os.path.join(self.dir, "executed.log")) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Mkd:
    def __init__(self, stack, upstreams, extra=()):
        self.dir = tmpdir("mkt-fastcgi.")
        self.proc = None
        stack.callback(self.cleanup)
        self.log = os.path.join(self.dir, "mkd.log")
        self.conf = os.path.join(self.dir, "mkd.conf")
        self.write_conf(upstreams)
        ready = os.path.join(self.dir, "ready")
        args = [MKD, "serve", "-c", self.conf, "--data_dir=" + self.dir,
                "--port=0", "--ready_file=" + ready, "--backend=fastcgi",
                "--fastcgi_script=" + FRONT, "--fastcgi_eject_ms=300",
                "--log_level=info"] + list(extra)
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=err, cwd=self.dir)
        self.port = int(poll("the ready file", lambda: os.path.exists(
            ready) and open(ready).read().strip()))

    def write_conf(self, upstreams):
        with open(self.conf, "w") as f:
            f.write("fastcgi_upstreams = %s\n" % upstreams)

    def request(self, body=None, path=None, timeout=60):
        """(exit status, stdout bytes, stderr text) of one sazukari run."""
        args = [SAZUKARI, "-k", os.path.join(self.dir, "server.pub.pem"),
                "127.0.0.1:%d" % self.port]
        args += ["-f", path] if path else [body]
        r = subprocess.run(args, capture_output=True,
                           timeout=timeout * SCALE)
        return r.returncode, r.stdout, r.stderr.decode(errors="replace")

    def status(self, key):
        r = subprocess.run([MKD, "status", "--control_socket=" +
                            os.path.join(self.dir, "mkd.sock")],
                           capture_output=True, text=True,
                           timeout=30 * SCALE)
        for line in r.stdout.split("\n"):
            if line.startswith(key + " "):
                return line[len(key) + 1:]
        return None

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        return stop_proc(self.proc) if self.proc else None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def expect_error(res, code):
    st, out, err = res
    assert st == 8 and code in err, (st, out, err)


CTX_APP = """<?php
return function (string $body, Megaki\\Context $ctx): string {
    trigger_error('mkt-warning-' . $body, E_USER_WARNING);
    return implode("\\n", [$ctx->clientAddress, $ctx->sessionId,
        (string)$ctx->requestId, $_SERVER['MEGAKI_KEY_ID'] ?? '',
        (string)strlen($body)]);
};
"""


def test_hello(stack):
    fpm = Fpm(stack, None, children=2)
    mkd = Mkd(stack, fpm.upstream)
    st, out, err = mkd.request("hello")
    assert st == 0, (st, err)
    assert out.startswith(b"Hello, world!\nYou are 127.0.0.1 port "), out
    assert b"5 bytes" in out, out
    # One connection, kept alive (FCGI_KEEP_CONN) and reused.
    for _ in range(2):
        assert mkd.request("again")[0] == 0
    line = mkd.status("backend.upstream " + fpm.upstream)
    assert line.startswith("up conns 1 idle 1 requests 3 "), line
    # The context reaches the script: a pool running ctx.php.
    with open(fpm.app_path("ctx.php"), "w") as f:
        f.write(CTX_APP)
    fpm.stop()
    fpm.app = "ctx.php"
    fpm.start()
    st, out, err = poll("a request to the restarted pool",
                        lambda: (lambda r: r if r[0] == 0 else None)(
                            mkd.request("abc")))
    addr, sid, rid, kid, n = out.decode().split("\n")
    pub = subprocess.run([MKD, "pubkey", "--key_file=" + os.path.join(
        mkd.dir, "server.pem")], capture_output=True, text=True).stdout
    assert addr == "127.0.0.1" and len(sid) == 32 and rid == "1", out
    assert len(kid) == 16 and kid in pub, (kid, pub)
    assert n == "3", out
    poll("the PHP warning in mkd's log at warn", lambda: any(
        " warn " in l and "stderr" in l and "mkt-warning-abc" in l
        for l in mkd.logtext().split("\n")))
    assert mkd.stop() == 0


def test_big(stack):
    fpm = Fpm(stack, "sleep.php", children=2)
    mkd = Mkd(stack, fpm.upstream)
    body = bytes((i * 7) & 0xFF for i in range(1 << 20))
    path = os.path.join(mkd.dir, "big.bin")
    with open(path, "wb") as f:
        f.write(body)
    st, out, err = mkd.request(path=path)
    assert st == 0 and out == body, (st, len(out), err)
    # 1 MiB answered to a small request: "grow:N" answers N bytes.
    st, out, err = mkd.request("grow:%d" % (1 << 20))
    assert st == 0 and out == b"g" * (1 << 20), (st, len(out), err)
    expect_error(mkd.request("grow:%d" % ((1 << 20) + 1)), "application")
    st, out, err = mkd.request("after")
    assert st == 0 and out == b"after", (st, out, err)


HANG_APP = """<?php
return function (string $body, Megaki\\Context $ctx): string {
    if ($body === 'hang') {
        file_put_contents(__DIR__ . '/hang.pid', (string)getmypid());
        sleep(60);
    }
    return 'ok ' . $body;
};
"""


def hanging(stack, mkd_args):
    """An FPM pool, an mkd in front of it, and a request that hangs in
    one of the pool's workers: (mkd, the thread, its result, the pid)."""
    fpm = Fpm(stack, "hang.php", children=2)
    with open(fpm.app_path("hang.php"), "w") as f:
        f.write(HANG_APP)
    mkd = Mkd(stack, fpm.upstream, mkd_args)
    res = {}
    t = threading.Thread(target=lambda: res.update(r=mkd.request("hang")))
    t.start()
    pidfile = fpm.app_path("hang.pid")
    pid = int(poll("the hanging worker", lambda: os.path.exists(
        pidfile) and open(pidfile).read().strip()))
    return mkd, t, res, pid


def test_killed(stack):
    mkd, t, res, pid = hanging(stack, ["--fastcgi_max_conns=1"])
    # Its one connection is busy: saturated, refused at once.
    expect_error(mkd.request("more", timeout=30), "overloaded")
    os.kill(pid, signal.SIGKILL)
    t.join(60 * SCALE)
    assert not t.is_alive()
    expect_error(res["r"], "internal")
    st, out, err = mkd.request("next")
    assert st == 0 and out == b"ok next", (st, out, err)
    assert int(mkd.status("backend.connections_lost")) >= 1
    assert mkd.stop() == 0


def test_restart(stack):
    fpm = Fpm(stack, "sleep.php", children=2)
    mkd = Mkd(stack, fpm.upstream)
    assert mkd.request("one")[:2] == (0, b"one")
    fpm.stop()
    # Down: refused at once, again and again (ejected or not).
    for _ in range(3):
        expect_error(mkd.request("down", timeout=30), "overloaded")
    assert "ejected" in mkd.status("backend.upstream " + fpm.upstream)
    fpm.start()
    poll("a request served after FPM's restart",
         lambda: mkd.request("two")[:2] == (0, b"two"))
    assert int(mkd.status("backend.overloaded")) >= 3
    assert mkd.stop() == 0


def fcgi_records(data):
    """(type, content) of the FastCGI records in data, as far as whole."""
    out = []
    while len(data) >= 8:
        _, typ, _, clen, plen, _ = struct.unpack(">BBHHBB", data[:8])
        if len(data) < 8 + clen + plen:
            break
        out.append((typ, data[8:8 + clen]))
        data = data[8 + clen + plen:]
    return out


def test_silent(stack):
    lsock = socket.socket()
    stack.callback(lsock.close)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    got = {}

    def hold():
        c, _ = lsock.accept()
        c.settimeout(60 * SCALE)
        data = b""
        while True:
            b = c.recv(65536)
            if not b:
                break
            data += b
        got["data"] = data
        c.close()

    t = threading.Thread(target=hold)
    t.start()
    mkd = Mkd(stack, "127.0.0.1:%d" % lsock.getsockname()[1],
              ["--request_timeout_ms=1000"])
    expect_error(mkd.request("anyone?"), "SZ_ERR_SERVER_TIMEOUT")
    t.join(60 * SCALE)
    assert not t.is_alive()
    recs = fcgi_records(got["data"])
    types = [r[0] for r in recs]
    # BEGIN_REQUEST, PARAMS..., STDIN "anyone?", then ABORT_REQUEST;
    # then mkd closed the connection (the loop above saw EOF).
    assert types[0] == 1 and types[-1] == 2, types
    assert (5, b"anyone?") in recs, recs
    assert int(mkd.status("backend.timeouts")) == 1
    assert mkd.stop() == 0


def load(mkd, prefix, stop, results):
    """Requests one after another until stop is set; each outcome in
    results as (token, exit status, stderr)."""
    i = 0
    while not stop.is_set():
        token = "%s-%d" % (prefix, i)
        i += 1
        st, out, err = mkd.request("id:%s\n" % token, timeout=60)
        ok = st == 0 and out == ("id:%s\n" % token).encode()
        results.append((token, 0 if ok else st, err))


def run_load(mkd, clients, during):
    stop = threading.Event()
    results = []
    ts = [threading.Thread(target=load, args=(mkd, "c%d" % k, stop, results))
          for k in range(clients)]
    for t in ts:
        t.start()
    try:
        during(results)
    finally:
        stop.set()
        for t in ts:
            t.join(120 * SCALE)
    assert not any(t.is_alive() for t in ts), "a client hung"
    return results


def test_failover(stack):
    a = Fpm(stack, "sleep.php", children=4)
    b = Fpm(stack, "sleep.php", children=4, tcp=True)
    mkd = Mkd(stack, a.upstream + ", " + b.upstream,
              ["--fastcgi_max_conns=4"])
    marks = {}

    def during(results):
        poll("requests on both pools", lambda: len(a.executed()) >= 5 and
             len(b.executed()) >= 5)
        a.stop()
        marks["stopped"] = len(results)
        poll("requests after pool A left",
             lambda: len(results) >= marks["stopped"] + 30)

    results = run_load(mkd, 4, during)
    print("# failover: %d requests, %d answered with an error" % (
        len(results), sum(1 for r in results if r[1] != 0)))
    # Clean outcomes only: served, or an error the server answered.
    bad = [r for r in results if r[1] not in (0, 8)]
    assert not bad, bad[:5]
    after = results[marks["stopped"] + 8:]  # those in flight settled
    assert after and all(r[1] == 0 for r in after), [
        r for r in after if r[1] != 0][:5]
    ran = a.executed() + b.executed()
    assert len(ran) == len(set(ran)), "a request ran twice"
    ok = {r[0] for r in results if r[1] == 0}
    assert ok <= set(ran), "an answered request did not run"
    assert mkd.stop() == 0


def test_reload(stack):
    a = Fpm(stack, "sleep.php", children=2)
    b = Fpm(stack, "sleep.php", children=2, tcp=True)
    mkd = Mkd(stack, a.upstream)
    assert mkd.request("id:r1\n")[0] == 0
    mkd.write_conf(b.upstream)
    mkd.proc.send_signal(signal.SIGHUP)
    poll("the reload", lambda: mkd.status("backend.reloads") == "1")
    assert mkd.request("id:r2\n")[0] == 0
    assert a.executed() == ["r1"] and b.executed() == ["r2"], (
        a.executed(), b.executed())
    assert mkd.status("backend.upstream " + b.upstream) is not None
    assert mkd.stop() == 0


def test_config(stack):
    """Bad FastCGI settings are refused with their name, by config --test
    and by serve."""
    d = tmpdir("mkt-fastcgi-conf.")
    stack.callback(shutil.rmtree, d, True)
    base = [MKD, "config", "--test", "--data_dir=" + d, "--port=0",
            "--backend=fastcgi"]
    r = subprocess.run(base + ["--fastcgi_upstreams=localhost:9000",
                               "--fastcgi_script=/srv/fpm.php"],
                       capture_output=True, text=True, timeout=60 * SCALE)
    assert r.returncode != 0 and '"localhost:9000" is neither' in r.stderr, r
    r = subprocess.run([MKD, "serve", "--data_dir=" + d, "--port=0",
                        "--backend=fastcgi", "--fastcgi_upstreams=unix:/x"],
                       capture_output=True, text=True, timeout=60 * SCALE)
    assert r.returncode != 0 and "fastcgi_script" in r.stderr, r


def test_shutdown_deadline(stack):
    mkd, t, res, _ = hanging(stack, ["--shutdown_timeout_ms=500"])
    # PHP-FPM holds the request when the shutdown deadline passes: it may
    # have run, so it is answered "timeout", never "shutdown", which
    # clients send again elsewhere (docs/PROTOCOL.md §8.5).
    mkd.proc.send_signal(signal.SIGTERM)
    t.join(60 * SCALE)
    assert not t.is_alive()
    expect_error(res["r"], "SZ_ERR_SERVER_TIMEOUT")


TESTS = [test_config, test_hello, test_big, test_killed, test_restart, test_silent,
         test_failover, test_reload, test_shutdown_deadline]

if __name__ == "__main__":
    only = sys.argv[5:]
    failed = 0
    for i, t in enumerate(TESTS, 1):
        if only and t.__name__ not in only:
            continue
        try:
            with contextlib.ExitStack() as stack:
                t(stack)
            print("ok %d - %s" % (i, t.__name__), flush=True)
        except Exception as e:  # report and go on to the next test
            failed += 1
            print("not ok %d - %s: %r" % (i, t.__name__, e), flush=True)
    sys.exit(1 if failed else 0)
