#!/usr/bin/python3
"""test_observe.py -- watching a live mkd: its logs, its metrics, its health.

The real mkd with the PHP backend on loopback, driven by the real sazukari
CLI; its /metrics parsed by the Prometheus project's own Python parser
(python3-prometheus-client from Debian), never by a regex of ours.

  serving      log_format = json, log_level = warn, an access log file,
               request_slowlog_ms, metrics_listen: after traffic (ok
               requests, an exception, a PHP warning, a slow request) the
               counters and histograms moved by what was sent; every log
               line parses as JSON; the application's exception and warning
               are in the log at error/warn; the slow request is logged at
               warn; the access log has one line per request with its
               outcome; no request body and no secret reaches a log; a
               resumed connection has a session id of its own;
               /health and /ready are 200, `mkd status` exits 0; bad HTTP
               gets 404/405/400; after logrotate's rename and SIGHUP the
               access log goes to the new file
  crash loop   an application that dies at load, log_format = journal:
               /ready is 503 and names the crash loop, mkd_ready is 0,
               `mkd status` exits 1 and says why; /health stays 200; every
               log line has its <N> priority prefix

Usage (ctest runs it): test_observe.py MKD SAZUKARI PHP APPS_DIR
Every wait polls with a generous deadline (TL_TIMEOUT_SCALE scales it,
and MKT_SLOW_BUILD=1, set by ctest for sanitized builds, by 4 more);
each daemon is stopped by its pid.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from prometheus_client.parser import text_string_to_metric_families

MKD, SAZUKARI, PHP, APPS = sys.argv[1:5]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from mkt import SCALE, poll, stop_proc  # noqa: E402 (tests/lib/mkt.py)


class Daemon:
    def __init__(self, app, extra):
        self.dir = tempfile.mkdtemp(prefix="mkt-observe.")
        os.chmod(self.dir, 0o711)
        for f in ("lib.php", app):
            shutil.copy(os.path.join(APPS, f), self.dir)
        self.log = os.path.join(self.dir, "mkd.log")
        ready = os.path.join(self.dir, "ready")
        args = [MKD, "serve", "--data_dir=" + self.dir, "--port=0",
                "--ready_file=" + ready, "--backend=php", "--php=" + PHP,
                "--app=" + os.path.join(self.dir, app), "--workers=1",
                "--metrics_listen=127.0.0.1:0"] + [
                    a.replace("{dir}", self.dir) for a in extra]
        if os.geteuid() == 0:
            args.append("--worker_user=root")
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=err, cwd=self.dir)
        try:
            self.port = int(poll("the ready file", lambda: os.path.exists(
                ready) and open(ready).read().strip()))
            # Port 0: the status says which one it got.
            self.mport = int(poll("the metrics port", lambda: next((
                l.split()[1] for l in self.status().stdout.split("\n")
                if l.startswith("metrics.port ")), None)))
        except BaseException:
            self.cleanup()
            raise

    def http(self, raw):
        with socket.create_connection(("127.0.0.1", self.mport), 10 * SCALE) as s:
            s.sendall(raw)
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), head.decode(), body.decode()

    def get(self, path):
        return self.http(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
                         .encode())

    def scrape(self):
        st, head, body = self.get("/metrics")
        assert st == 200, st
        assert "text/plain; version=0.0.4" in head, head
        out = {}
        for fam in text_string_to_metric_families(body):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def request(self, body, session=None):
        r = subprocess.run([SAZUKARI, "-k",
                            os.path.join(self.dir, "server.pub.pem")] +
                           (["-s", session] if session else []) +
                           ["127.0.0.1:%d" % self.port, body],
                           capture_output=True, timeout=60 * SCALE)
        return r.returncode, r.stdout

    def status(self):
        return subprocess.run([MKD, "status", "--control_socket=" +
                               os.path.join(self.dir, "mkd.sock")],
                              capture_output=True, text=True,
                              timeout=30 * SCALE)

    def stop(self):
        """SIGTERM, and mkd's exit status (0 after a graceful shutdown;
        a sanitizer's report makes it non-zero)."""
        return stop_proc(self.proc)

    def cleanup(self):
        self.stop()
        if os.environ.get("MKT_KEEP") is None:
            shutil.rmtree(self.dir, ignore_errors=True)


def val(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def moved_since(m0, m1, name, **labels):
    return val(m1, name, **labels) - val(m0, name, **labels)


def log_lines(path):
    return [l for l in open(path, errors="strict").read().split("\n") if l]


def test_serving():
    d = Daemon("observe.php", ["--log_format=json", "--log_level=warn",
                               "--request_slowlog_ms=200",
                               "--access_log={dir}/access.log"])
    access = os.path.join(d.dir, "access.log")
    try:
        # Ready once the worker has started.
        before = poll("mkd_ready 1", lambda: (lambda m: m if val(
            m, "mkd_ready") == 1 else None)(d.scrape()))
        st, _, body = d.get("/ready")
        assert (st, body) == (200, "ready\n"), (st, body)
        assert d.get("/health")[0] == 200
        for i in range(5):
            rc, out = d.request("hello-%d" % i)
            assert rc == 0 and out == b"hello-%d" % i, (rc, out)
        assert d.request("throw")[0] != 0
        assert d.request("warn") == (0, b"warned")
        assert d.request("sleep:400") == (0, b"sleep:400")
        after = poll("the counters", lambda: (lambda m: m if val(
            m, "mkd_requests_total", outcome="ok") -
            val(before, "mkd_requests_total", outcome="ok") >= 7 else None)(
            d.scrape()))
        moved = lambda name, **l: moved_since(before, after, name, **l)
        assert moved("mkd_requests_total", outcome="ok") == 7
        assert moved("mkd_requests_total", outcome="application") == 1
        assert moved("mkd_handshakes_total", kind="full") == 8
        assert moved("mkd_connections_accepted_total") == 8
        assert moved("mkd_slow_requests_total") == 1
        assert moved("mkd_request_duration_seconds_count") == 8
        assert moved("mkd_request_duration_seconds_sum") >= 0.4
        assert moved("mkd_request_duration_seconds_bucket", le="0.25") <= 7
        assert moved("mkd_request_duration_seconds_bucket", le="+Inf") == 8
        assert moved("mkd_handshake_duration_seconds_count", kind="full") == 8
        assert moved("mkd_received_bytes_total") > 0
        assert moved("mkd_sent_bytes_total") > 0
        assert val(after, "mkd_workers", state="idle") + \
            val(after, "mkd_workers", state="busy") == 1
        assert val(after, "mkd_workers_crash_loop") == 0
        poll("closed connections", lambda: val(d.scrape(),
             "mkd_connections_closed_total", reason="done") -
             val(before, "mkd_connections_closed_total", reason="done") == 8)

        # HTTP the listener refuses.
        assert d.http(b"POST /metrics HTTP/1.1\r\n\r\n")[0] == 405
        assert "Allow: GET" in d.http(b"PUT /ready HTTP/1.1\r\n\r\n")[1]
        assert d.get("/nope")[0] == 404
        assert d.http(b"GET /metrics HTTP/9.9\r\n\r\n")[0] == 505
        assert d.http(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n")[0] \
            == 400
        assert d.http(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000)[0] == 431
        # A request that never ends: answered 408 after the listener's
        # 5 s, not held open.
        assert d.http(b"GET /metrics HTTP/1.1\r\n")[0] == 408

        r = d.status()
        assert r.returncode == 0 and "ready yes" in r.stdout, r

        # Logs: the access log has each request once, with its outcome.
        lines = [json.loads(l) for l in poll("the access log", lambda: (
            lambda ls: ls if len(ls) >= 8 else None)(
            log_lines(access) if os.path.exists(access) else []))]
        assert all(l["log"] == "access" for l in lines)
        outcomes = sorted(l["outcome"] for l in lines)
        assert outcomes == ["application"] + ["ok"] * 7, outcomes
        slow = [l for l in lines if l["duration_ms"] >= 400]
        assert len(slow) == 1 and slow[0]["worker_pid"] > 0
        assert all(len(l["session"]) == 8 and l["client"] == "127.0.0.1"
                   for l in lines)
        # The daemon log at warn: JSON, the application's failure and
        # warning, the slow request; never a request's body.
        daemon = [json.loads(l) for l in log_lines(d.log)]
        assert all(l["level"] in ("warn", "error") for l in daemon), daemon
        text = json.dumps(daemon)
        assert "observe-test exception" in text
        assert any(l["level"] == "warn" and "observe-test warning" in l["msg"]
                   for l in daemon), daemon
        assert any(l["level"] == "warn" and l["msg"].startswith(
            "slow request") for l in daemon), daemon
        assert "hello-3" not in text and "hello-3" not in open(access).read()

        # A resumed connection has a session id of its own (derived per
        # handshake, docs/PROTOCOL.md 6.4; docs/WORKER-PROTOCOL.md says
        # so): the access log shows two different ones.
        sess = os.path.join(d.dir, "client.session")
        m0 = d.scrape()
        assert d.request("first", sess) == (0, b"first")
        assert d.request("again", sess) == (0, b"again")
        assert moved_since(m0, d.scrape(), "mkd_handshakes_total",
                           kind="resumed") == 1
        two = poll("two more access lines", lambda: (lambda ls: ls[-2:] if
                   len(ls) >= 10 else None)(log_lines(access)))
        sids = [json.loads(l)["session"] for l in two]
        assert sids[0] != sids[1], sids

        # logrotate: rename, SIGHUP, and the next line is in a new file.
        os.rename(access, access + ".1")
        d.proc.send_signal(signal.SIGHUP)
        poll("the reopened access log", lambda: d.request("after-hup")[0]
             == 0 and os.path.exists(access) and
             len(log_lines(access)) >= 1)
        assert json.loads(log_lines(access)[0])["bytes_in"] == 9
        rc = d.stop()
        assert rc == 0, "mkd exit status %d (log %s)" % (rc, d.log)
    finally:
        d.cleanup()


def test_crash_loop():
    d = Daemon("dies_at_load.php", ["--log_format=journal"])
    try:
        st, body = poll("/ready to fail for the crash loop", lambda: (
            lambda r: (r[0], r[2]) if "crash loop" in r[2] else None)(
            d.get("/ready")))
        assert st == 503, (st, body)
        assert val(d.scrape(), "mkd_ready") == 0
        assert d.get("/health")[0] == 200
        r = d.status()
        assert r.returncode == 1, r
        assert "ready no" in r.stdout and "not ready:" in r.stderr, r
        rc = d.stop()
        assert rc == 0, "mkd exit status %d (log %s)" % (rc, d.log)
        for l in log_lines(d.log):
            assert l[0] == "<" and l[2] == ">" and l[1] in "34567", l
    finally:
        d.cleanup()


if __name__ == "__main__":
    for t in (test_serving, test_crash_loop):
        t()
        print("ok", t.__name__)
