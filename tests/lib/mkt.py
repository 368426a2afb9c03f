"""The Python integration suites' share of tests/lib (as testlib.h is the
C suites'): deadlines stretched for slow builds, polling a condition, and
stopping a process started by the test.

SCALE multiplies every deadline: TL_TIMEOUT_SCALE (as testlib reads it),
times 4 for a sanitized build (MKT_SLOW_BUILD=1, set by CMake)."""
import os
import signal
import subprocess
import time

SCALE = int(os.environ.get("TL_TIMEOUT_SCALE", "1")) * (
    4 if os.environ.get("MKT_SLOW_BUILD") == "1" else 1)


def poll(what, cond, seconds=30):
    """cond()'s first true value, polled until seconds * SCALE pass."""
    until = time.monotonic() + seconds * SCALE
    while time.monotonic() < until:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def stop_proc(proc):
    """SIGTERM proc, wait (SIGKILL past the deadline); its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30 * SCALE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
