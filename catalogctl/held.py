"""What the mass-deletion guard holds, in words (`catalogctl status`, a run's summary,
the dashboard): how many deletions, from which run, why, and how to release them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from catalog_sync.sync.guard import release_command

_NO_READ = ("resend", "resync-no-reindex")  # runs that read no source decide nothing


def held_run(runs: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The feed's newest run that read the source to its end, if its deletions are
    held (`runs`: run records as JSON, newest first); None when nothing is held."""
    for run in runs:
        if run.get("kind") in _NO_READ or run.get("status") not in ("completed", "held"):
            continue
        if run.get("status") == "held":
            return run
        if run.get("complete"):
            return None  # a later complete read decided: nothing held any more
    return None


def held_lines(run: dict[str, Any]) -> list[str]:
    """The lines that say what `run` holds and how to release it."""
    held = run.get("counts", {}).get("deletions_held", 0)
    feed = run["feed"]
    return [
        f"  HELD: {held:,} deletion(s) held by run {run['run_id']} ({run.get('held')}); "
        "the items stay live until confirmed",
        f"    deletions meant? apply them: {release_command(feed)}",
        "    export wrong? fix it: the next sync that reads them deletes nothing",
    ]
