"""What a run is asked to do: the reindex event (the wire form the handler, the CLI
and the tests share) and the engine's request it becomes.

The event validates its own option combinations into ONE run mode (`RunKind`);
nothing else decides what a combination of options means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from catalog_sync.errors import RequestError
from catalog_sync.sync.runs import RunKind

IdType = Literal["sku", "productId"]

# The resync options that choose a mode: at most one of them per run.
_MODE_OPTIONS = {
    "no_reindex": ("--no-reindex", "resync-no-reindex"),
    "failed_only": ("--failed-only", "resend"),
    "continue_resync": ("--continue-resync", "resync-continue"),
    "cleanup_feed": ("--cleanup-feed", "resync-cleanup"),
    "by_ids": ("--by-ids", "resync-by-ids"),
}

_NO_READ = ("resync-no-reindex", "resend")  # modes that read no source (and delete nothing)


class ReindexEvent(BaseModel):
    """What the reindex function accepts: `{"action": "sync"}` (also the
    EventBridge scheduled event), `{"action": "resend"}` or
    `{"action": "resync", "feed": ..., <one resync option>}`."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    action: Literal["sync", "resync", "resend"] = "sync"
    feed: str | None = None
    no_reindex: bool = False
    dry_run: bool = False
    by_ids: list[str] | None = Field(default=None, min_length=1)
    id_type: IdType = "sku"
    source: str | None = None  # overrides CATALOG_SOURCE for this run
    failed_only: bool = False  # resync: resend what waits for a retry; no source read
    cleanup_feed: bool = False  # resync: rebuild the feed state from scratch
    continue_resync: bool = False  # resync: continue an interrupted resync
    # resync: apply the deletions the mass-deletion guard would hold (sync/guard.py)
    confirm_deletions: bool = False

    @classmethod
    def parse(cls, event: dict[str, Any]) -> ReindexEvent:
        """The event as the handler receives it; a bad combination is a `RequestError`
        naming the options."""
        if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
            return cls(action="sync")  # the hourly rule passes the scheduled event as is
        try:
            return cls.model_validate(event)
        except ValidationError as exc:
            raise RequestError(f"bad reindex event: {_problems(exc)}") from None

    @model_validator(mode="after")
    def _one_mode(self) -> ReindexEvent:
        chosen = [flag for name, (flag, _) in _MODE_OPTIONS.items() if getattr(self, name)]
        if self.action != "resync":
            chosen += ["--confirm-deletions"] if self.confirm_deletions else []
            if chosen:
                raise ValueError(f"{', '.join(chosen)}: only a resync takes these options")
            return self
        if not self.feed:
            raise ValueError("a resync needs a feed")
        if len(chosen) > 1:
            raise ValueError(f"choose one of {', '.join(f for f, _ in _MODE_OPTIONS.values())}")
        if self.confirm_deletions and self.mode in _NO_READ:
            raise ValueError(
                f"--confirm-deletions: {chosen[0]} reads no source, so it deletes nothing"
            )
        if "id_type" in self.model_fields_set and self.id_type != "sku" and not self.by_ids:
            raise ValueError("--id-type productId needs --by-ids")
        if self.by_ids and self.id_type == "productId":
            for value in self.by_ids:
                if not value.strip().isdigit() or int(value) <= 0:
                    raise ValueError(
                        f"--by-ids: {value!r} is not a product id (a positive integer)"
                    )
        return self

    @property
    def mode(self) -> RunKind:
        """The one run mode these options make."""
        if self.action != "resync":
            return self.action
        for name, (_, mode) in _MODE_OPTIONS.items():
            if getattr(self, name):
                return mode  # type: ignore[return-value]
        return "resync"

    def to_request(self, feeds: tuple[str, ...]) -> ReindexRequest:
        ids = tuple(v.strip() for v in self.by_ids) if self.by_ids else None
        return ReindexRequest(
            feeds=feeds,
            mode=self.mode,
            by_ids=frozenset(v.lower() for v in ids) if ids and self.id_type == "sku" else None,
            product_ids=tuple(int(v) for v in ids) if ids and self.id_type == "productId" else None,
            dry_run=self.dry_run,
            confirm_deletions=self.confirm_deletions,
        )


def _problems(exc: ValidationError) -> str:
    out = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        out.append(f"{where}: {msg}" if where else msg)
    return "; ".join(out)


@dataclass(frozen=True)
class ReindexRequest:
    """What the engine runs: the feeds (reindexed together, from one read of the
    source) and the run mode; the mode alone says what is read and what is queued."""

    feeds: tuple[str, ...]
    mode: RunKind = "sync"
    by_ids: frozenset[str] | None = None  # only these groups (SKUs), lower-cased
    product_ids: tuple[int, ...] | None = None  # or these Magento product ids (the engine
    # resolves them to SKUs through the source)
    dry_run: bool = False
    confirm_deletions: bool = False  # the mass-deletion guard does not hold this run's deletions
    # Continue an interrupted resync (`resumed_from`): buckets below `resume_from` were
    # done by it. Set by the engine from the run's checkpoint, under the lease.
    resume_from: int = 0
    resumed_from: str | None = None

    @property
    def kind(self) -> RunKind:
        return self.mode

    @property
    def force(self) -> bool:
        """A resync: queue every item, changed or not."""
        return self.mode.startswith("resync")

    @property
    def no_reindex(self) -> bool:
        """Resend the compiled feed without reading the source."""
        return self.mode == "resync-no-reindex"

    @property
    def resend_only(self) -> bool:
        """Resend what waits (items whose export ran out of retries, items queued by a
        run whose messages never went out) without reading the source."""
        return self.mode == "resend"

    @property
    def cleanup(self) -> bool:
        """Rebuild the state from scratch: forget everything but what the SaaS side
        still holds (so items gone from the catalog are still sent as deletions)."""
        return self.mode == "resync-cleanup"

    @property
    def reads_source(self) -> bool:
        return not (self.no_reindex or self.resend_only)
