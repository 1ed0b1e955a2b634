"""The collector settings of a handler process (`infra.heap`), in a process of their own:
they are the process's, and the test process must keep its own."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import gc, json
from catalog_sync.infra import heap
kept = [[i] for i in range(1000)]  # alive when the process settles: frozen
before = {"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()[0]}
heap.settle()
first = {"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()[0]}
later = [[i] for i in range(1000)]  # made after: not frozen by a second call
heap.settle()
second = {"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()[0]}
print(json.dumps({"before": before, "first": first, "second": second,
                  "settled": heap.settled(), "young": heap.YOUNG_THRESHOLD}))
"""


def test_settle_freezes_what_is_alive_once_and_collects_the_young_less_often() -> None:
    """Given a fresh process with objects alive; when it settles twice; then the first
    call froze them and set the youngest generation's threshold, and the second call
    froze nothing more."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    ).stdout
    got = json.loads(out)
    assert got["before"]["frozen"] == 0
    assert got["before"]["threshold"] != got["young"]
    assert got["first"]["frozen"] >= 1000  # the lists kept, besides the imports
    assert got["first"]["threshold"] == got["young"]
    assert got["second"] == got["first"]  # once per process: `later` is not frozen
    assert got["settled"] is True
