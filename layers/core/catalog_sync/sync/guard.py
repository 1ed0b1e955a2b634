"""The mass-deletion guard: how many deletions a run may apply without a confirmation.

A complete read that would delete more than `MAX_DELETE_FRACTION` of a feed's live
items, or more than `MAX_DELETES`, or every live item (a header-only export, however
small the feed), holds its deletions: the held items stay live in the state and in the
snapshot, and the next run holds them again until a resync with `confirmDeletions`
applies them.
"""

from __future__ import annotations

from dataclasses import dataclass

RELEASE = "catalogctl resync --feed {feed} --confirm-deletions"


@dataclass(frozen=True)
class DeletionGuard:
    max_fraction: float = 0.1  # of the feed's live items before the run
    max_deletes: int | None = None  # an absolute bound as well (None: none)

    def verdict(self, deletions: int, live: int) -> str | None:
        """None when `deletions` of `live` items may be applied; else why they are held."""
        if deletions <= 0:
            return None
        if deletions >= live:
            return f"the read would delete every one of the feed's {live:,} live items"
        if self.max_deletes is not None and deletions > self.max_deletes:
            return f"{deletions:,} deletions is more than MAX_DELETES={self.max_deletes:,}"
        if deletions > self.max_fraction * live:
            return (
                f"{deletions:,} of {live:,} live items ({deletions / live:.0%}) is more than "
                f"MAX_DELETE_FRACTION={self.max_fraction:g}"
            )
        return None


def release_command(feed: str) -> str:
    """What an operator runs to apply a held run's deletions."""
    return RELEASE.format(feed=feed)
