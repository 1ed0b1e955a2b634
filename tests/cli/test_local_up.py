"""`catalogctl local up` runs the feed receiver in a process of its own (as the SaaS
side is), which answers at the URL the stack prints and never outlives the stack:
stopped with it, and gone on its own when the stack is killed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests

from devstack.demo import start_stack, stop_stack


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out.update(int(p) for p in f.read().split())
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return True  # exited, not yet reaped
        time.sleep(0.1)
    return False


def _receiver_child(stack_pid: int) -> int:
    found = [p for p in _children(stack_pid) if "devstack.receiver" in _cmdline(p)]
    assert len(found) == 1, [_cmdline(p) for p in _children(stack_pid)]
    return found[0]


def test_local_up_serves_the_receiver_from_a_child_it_stops() -> None:
    proc, env = start_stack(show=False)
    try:
        receiver = _receiver_child(proc.pid)
        assert "--api-key" not in _cmdline(receiver)  # the key is not on a command line
        base = env["SAAS_BASE_URL"].rstrip("/")
        assert requests.get(f"{base}/_health", timeout=10).ok
        stats = requests.get(f"{base}/_stats", timeout=10).json()
        assert stats["requests"]["total"] == 0
    finally:
        stop_stack(proc)
    assert proc.returncode is not None
    assert _gone(receiver, within=10)


def test_the_receiver_does_not_outlive_a_killed_stack() -> None:
    proc, _ = start_stack(show=False)
    receiver = _receiver_child(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _gone(receiver, within=10)
