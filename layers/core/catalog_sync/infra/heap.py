"""The cyclic garbage collector of a handler process, settled once its clients exist.

A reindex decodes state buckets (a list per record: 500,000 of them for 500,000
items), diffs them and drops them; an export does the same a request at a time. Each
of CPython's full collections walks every tracked object, and most of those in a
handler process are its imports and boto3's service models, which live as long as
the process. `settle` collects once, then freezes what is there (`gc.freeze`: frozen
objects are never walked again; reference counting still frees them) and collects
the youngest generation after `YOUNG_THRESHOLD` allocations instead of 700.

Measured in the main process of a 500k-product run on the local stack
(docs/decision_log.md): 3.3 s of collections in a resync before, 1.5 s after; 0.83 s
in a 1%-changed sync before, 0.48 s after.
"""

from __future__ import annotations

import gc

# Allocations of container objects between two collections of the youngest generation
# (CPython's default: 700). Cyclic garbage waits longer; what this code allocates is
# freed by reference counting.
YOUNG_THRESHOLD = 50_000

_settled = False


def settle() -> None:
    """Once per process: collect, freeze what is alive, collect the young less often."""
    global _settled
    if _settled:
        return
    _settled = True
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def settled() -> bool:
    return _settled
