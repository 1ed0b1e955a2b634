"""`catalogctl` without `--local`: invoke the deployed functions with the same events.

The functions are found from the CloudFormation stack's outputs. A reindex runs up
to the function's 900 s timeout: the invoke waits longer than that (read timeout
960 s) and is never retried by botocore (a retry would meet the run's own lease
and report a failure while the first run goes on). While it waits, the run record
in the state table is followed and its progress printed; then the export parts,
until every queued part has a result. Ctrl-C stops only the following: the run
goes on, and `catalogctl status --run ID --follow` picks it up again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from catalog_sync.aws.dynamodb import DynamoFeedState
from catalog_sync.aws.s3 import S3BlobStore
from catalog_sync.errors import ConfigError
from catalog_sync.feeds.registry import all_feeds
from catalog_sync.ports import FeedState
from catalog_sync.sync.runs import RunRecord

NEEDED_OUTPUTS = ("ReindexFunctionName", "StateTableName", "SnapshotBucketName", "ExportQueueUrl")
# Above the reindex function's 900 s timeout; one attempt only.
INVOKE_CONFIG = Config(
    read_timeout=960, connect_timeout=10, retries={"total_max_attempts": 1, "mode": "standard"}
)
POLL_SECONDS = 2.0


class RemoteRunner:
    def __init__(
        self,
        stack: str,
        region: str | None = None,
        *,
        session: Any = None,
        endpoint_url: str | None = None,
        lambda_client: Any = None,
    ) -> None:
        self.session = session or boto3.session.Session(region_name=region)
        self.endpoint_url = endpoint_url
        cfn = self._client("cloudformation")
        try:
            stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
        except cfn.exceptions.ClientError as exc:
            raise ConfigError(f"cannot read stack {stack!r}: {exc}") from None
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        for needed in NEEDED_OUTPUTS:
            if needed not in self.outputs:
                raise ConfigError(f"stack {stack!r} has no output {needed}: is it catalog-sync?")
        self.lambda_client = lambda_client or self._client("lambda", config=INVOKE_CONFIG)

    def _client(self, name: str, **kwargs: Any) -> Any:
        return self.session.client(name, endpoint_url=self.endpoint_url, **kwargs)

    def reindex(self, event: dict[str, Any]) -> dict[str, Any]:
        resp = self.lambda_client.invoke(
            FunctionName=self.outputs["ReindexFunctionName"],
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        payload = json.loads(resp["Payload"].read() or b"{}")
        if resp.get("FunctionError"):
            message = payload.get("errorMessage", "unknown error")
            raise ConfigError(f"the reindex function failed: {message}")
        result: dict[str, Any] = payload
        return result

    def state(self) -> DynamoFeedState:
        # A bucket too large for DynamoDB lives in the snapshot bucket (as in App.state).
        overflow = S3BlobStore(self._client("s3"), self.outputs["SnapshotBucketName"])
        return DynamoFeedState(
            self._client("dynamodb"), self.outputs["StateTableName"], overflow=overflow
        )


class Interrupted(Exception):
    """Ctrl-C while following: the run goes on. Carries the runs seen so far."""

    def __init__(self, runs: list[tuple[str, str]]) -> None:
        super().__init__("interrupted")
        self.runs = runs


@dataclass
class Follower:
    """Follows run records (and their export parts) in the state table, printing
    progress lines as they change."""

    state: FeedState
    echo: Callable[[str], None]
    sleep: Callable[[float], None] = time.sleep
    poll: float = POLL_SECONDS
    _last: dict[tuple[str, str], str] = field(default_factory=dict)

    def known_runs(self, feeds: Iterable[str]) -> set[tuple[str, str]]:
        return {(f, r.run_id) for f in feeds for r in self.state.list_runs(f, limit=5)}

    def new_runs(self, feeds: Iterable[str], before: set[tuple[str, str]]) -> list[RunRecord]:
        return [
            r
            for f in feeds
            for r in self.state.list_runs(f, limit=5)
            if (f, r.run_id) not in before
        ]

    def show(self, run: RunRecord) -> None:
        meta = self.state.read_meta(run.feed)
        total = meta.buckets if meta else None
        line = f"  {run.feed}: run {run.run_id} {run.status}"
        if run.status == "running" and run.buckets_done:
            line += f": diffed {run.buckets_done}" + (f"/{total}" if total else "") + " buckets"
        if run.status == "running" and run.continuations:
            line += f" (continuation {run.continuations})"
        if self._last.get((run.feed, run.run_id)) != line:
            self._last[(run.feed, run.run_id)] = line
            self.echo(line)

    def until_finished(self, feed: str, run_id: str) -> RunRecord:
        while True:
            run = self.state.get_run(feed, run_id)
            if run is None:
                raise ConfigError(f"no run {run_id} of feed {feed}")
            self.show(run)
            if run.status != "running":
                return run
            self.sleep(self.poll)

    def exports(self, runs: list[RunRecord]) -> dict[str, int]:
        """Wait until every queued part of these runs has a result; the totals."""
        shown = -1
        while True:
            parts = [p for r in runs for p in self.state.list_part_results(r.feed, r.run_id)]
            queued = sum(r.parts_enqueued for r in runs)
            if len(parts) != shown:
                shown = len(parts)
                self.echo(f"  exported {len(parts)}/{queued} part(s)")
            if len(parts) >= queued:
                totals = {"sent": 0, "failed": 0, "retry": 0}
                for part in parts:
                    for k in totals:
                        totals[k] += part.counts.get(k, 0)
                totals["parts"] = len(parts)
                totals["errors"] = sum(1 for p in parts if p.error)
                return totals
            self.sleep(self.poll)


def find_run(state: FeedState, run_id: str, feed: str | None = None) -> RunRecord:
    for name in [feed] if feed else all_feeds():
        run = state.get_run(name, run_id)
        if run is not None:
            return run
    raise ConfigError(f"no run {run_id!r}" + (f" of feed {feed}" if feed else " in any feed"))


def run_and_follow(
    runner: RemoteRunner,
    event: dict[str, Any],
    follower: Follower,
    *,
    with_exports: bool = True,
) -> dict[str, Any]:
    """Invoke the reindex function (in a thread: the call blocks up to 900 s) and
    follow its run records meanwhile; then its exports. Ctrl-C raises `Interrupted`
    with the runs seen so far (they go on)."""
    feeds = [event["feed"]] if event.get("feed") else all_feeds()
    before = follower.known_runs(feeds)
    outcome: dict[str, Any] = {}

    def invoke() -> None:
        try:
            outcome["result"] = runner.reindex(event)
        except Exception as exc:  # handed to the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=invoke, name="catalogctl-invoke", daemon=True)
    seen: list[tuple[str, str]] = []
    try:
        thread.start()
        while thread.is_alive():
            for run in follower.new_runs(feeds, before):
                if (run.feed, run.run_id) not in seen:
                    seen.append((run.feed, run.run_id))
                follower.show(run)
            thread.join(follower.poll)
        if "error" in outcome:
            raise outcome["error"]
        result: dict[str, Any] = outcome["result"]
        seen = [(r["feed"], r["run_id"]) for r in result.get("runs", []) if "run_id" in r]
        records = [follower.until_finished(f, r) for f, r in seen]
        queued = [r for r in records if r.parts_enqueued and r.status != "dry-run"]
        if with_exports and queued and not event.get("dryRun"):
            result["export"] = follower.exports(queued)
        return result
    except KeyboardInterrupt:
        raise Interrupted(seen) from None
