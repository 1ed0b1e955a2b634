"""Tests' view of the unchanged-source shortcut (`sync.unchanged`)."""

from __future__ import annotations

from typing import Any


def drop_seals(runner: Any) -> None:
    """No run of `runner`'s stack finds a seal: its next sync goes the per-record path.
    A run in one invocation seals its source and a continued one does not, so a test
    that compares what the sync after each builds drops the seals first; whether a
    run seals also depends on the clock (a file written just now is not sealed)."""
    state = runner.app.state
    for feed in runner.app.settings.feed_names():
        meta = state.read_meta(feed)
        if meta is not None and meta.source_seal is not None:
            meta.source_seal = None
            state.write_meta(meta)
