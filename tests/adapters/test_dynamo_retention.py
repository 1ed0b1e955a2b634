"""Run records and part results expire by DynamoDB TTL once finished (issue 10, item 7);
state buckets, feed meta and running runs never do."""

from __future__ import annotations

import time

from catalog_sync.aws.dynamodb import DynamoFeedState
from catalog_sync.sync.runs import FeedMeta, PartResult, RunRecord


def _item(aws, pk: str, sk: str) -> dict:
    return aws.dynamodb.get_item(TableName=aws.names.table, Key={"pk": {"S": pk}, "sk": {"S": sk}})[
        "Item"
    ]


def test_finished_runs_and_part_results_get_a_ttl(aws_clients) -> None:
    aws = aws_clients()
    state = DynamoFeedState(aws.dynamodb, aws.names.table, run_retention_days=7)
    run = RunRecord(feed="products", run_id="r1", kind="sync", started_at="2026-12-01T00:00:00")
    state.put_run(run)
    assert "ttl" not in _item(aws, "feed#products", "run#r1")  # running: kept
    run.status, run.finished_at = "completed", "2026-12-01T00:05:00"
    state.put_run(run)
    ttl = int(_item(aws, "feed#products", "run#r1")["ttl"]["N"])
    assert abs(ttl - (time.time() + 7 * 86_400)) < 120
    state.put_part_result(PartResult(feed="products", run_id="r1", bucket=3, finished_at="x"))
    assert int(_item(aws, "run#products#r1", "part#0003")["ttl"]["N"]) >= ttl - 5
    state.write_meta(FeedMeta(feed="products"))
    assert "ttl" not in _item(aws, "feed#products", "meta")
    assert state.get_run("products", "r1") == run  # still readable as before


def test_no_retention_means_no_ttl(aws_clients) -> None:
    aws = aws_clients()
    state = DynamoFeedState(aws.dynamodb, aws.names.table)
    run = RunRecord(feed="products", run_id="r2", kind="sync", started_at="a", finished_at="b")
    state.put_run(run)
    assert "ttl" not in _item(aws, "feed#products", "run#r2")
