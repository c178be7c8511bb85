"""The serve tests stop what they started and nothing else: ``stop_tree`` kills a server's
process tree, and processes seen below it that outlived it, but never a process elsewhere
whose command line looks the same (Ray's replica processes on a shared machine)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from .serving import process_tree, stop_tree

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux's /proc")

LOOKALIKE = "ServeReplica:effnet:effnet-model"
SLEEP = "import time; time.sleep(120)"


def replicas_below(pid: int):  # type: ignore[no-untyped-def]
    return [p for p in process_tree(pid) if p.pid != pid and LOOKALIKE in p.command()]


def wait_for(condition, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def start_server_with_replica() -> subprocess.Popen:
    """A stand-in server that starts one "replica" with Ray's command line."""
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {SLEEP!r}, {LOOKALIKE!r}]); {SLEEP}"
    server = subprocess.Popen([sys.executable, "-c", code])
    assert wait_for(lambda: len(replicas_below(server.pid)) == 1)
    return server


def test_stop_tree_kills_the_server_s_processes_and_no_lookalike() -> None:
    lookalike = subprocess.Popen([sys.executable, "-c", SLEEP, LOOKALIKE])    # someone else's, same name
    servers = [start_server_with_replica(), start_server_with_replica()]
    try:
        # A live server: its tree as it is now.
        (replica,) = replicas_below(servers[0].pid)
        (other,) = replicas_below(servers[1].pid)
        stop_tree(servers[0])
        assert wait_for(lambda: not replica.alive()), replica
        assert lookalike.poll() is None and other.alive(), "processes that were not this server's were killed"
        # A server that died first: its replica, orphaned, is known from an earlier look.
        known = process_tree(servers[1].pid)
        (orphan,) = replicas_below(servers[1].pid)
        servers[1].kill()
        servers[1].wait()
        assert orphan.alive()
        stop_tree(servers[1], known)
        assert wait_for(lambda: not orphan.alive()), orphan
        assert lookalike.poll() is None, "a process that was not the test's was killed"
    finally:
        for proc in (lookalike, *servers):
            proc.kill()
            proc.wait(10)
