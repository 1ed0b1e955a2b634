"""SqsExportQueue against the session's moto server (real HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from catalog_sync.aws.sqs import SqsExportQueue
from catalog_sync.errors import ConfigError, RetryableError
from catalog_sync.sync.snapshot import ExportMessage
from devstack.localaws import LocalAws


def messages(n: int, run_id: str = "r1") -> list[ExportMessage]:
    return [
        ExportMessage(
            feed="products",
            run_id=run_id,
            bucket=b,
            part_key=f"snapshots/products/{run_id}/part-{b:04d}.jsonl.gz" if b % 2 else None,
            manifest_key=f"snapshots/products/{run_id}/manifest.json",
        )
        for b in range(n)
    ]


def drain(aws: LocalAws, url: str) -> list[ExportMessage]:
    out: list[ExportMessage] = []
    while True:
        got = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        out.extend(ExportMessage.model_validate_json(m["Body"]) for m in got)


class FlakyClient:
    """The real client, except that SendMessageBatch refuses (without sending) the
    entries whose bucket is in `refuse`, the first `times` times each is sent."""

    def __init__(self, real: Any, refuse: set[int], times: int) -> None:
        self.real = real
        self.left = dict.fromkeys(refuse, times)
        self.batches: list[int] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.batches.append(len(Entries))
        refused = []
        for e in Entries:
            bucket = ExportMessage.model_validate_json(e["MessageBody"]).buckets[0]
            if self.left.get(bucket, 0) > 0:
                self.left[bucket] -= 1
                refused.append(e)
        sent = [e for e in Entries if e not in refused]
        response: dict[str, Any] = {"Successful": [], "Failed": []}
        if sent:
            response = dict(self.real.send_message_batch(QueueUrl=QueueUrl, Entries=sent))
        response["Failed"] = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "boom"}
            for e in refused
        ]
        return response


def test_sqs_queue_sends_every_message_in_batches_of_ten(
    aws_clients: Callable[..., LocalAws],
) -> None:
    aws = aws_clients()
    sent = messages(23)
    spy = FlakyClient(aws.sqs, refuse=set(), times=0)

    SqsExportQueue(spy, aws.queue_url).send(sent)

    assert spy.batches == [10, 10, 3]
    got = drain(aws, aws.queue_url)
    assert sorted(got, key=lambda m: m.buckets) == sent


def test_sqs_queue_sends_nothing_for_no_messages(aws_clients: Callable[..., LocalAws]) -> None:
    aws = aws_clients()
    aws.queue().send([])
    assert drain(aws, aws.queue_url) == []


def test_sqs_queue_retries_failed_entries(aws_clients: Callable[..., LocalAws]) -> None:
    aws = aws_clients()
    flaky = FlakyClient(aws.sqs, refuse={3, 12}, times=2)
    queue = SqsExportQueue(flaky, aws.queue_url, sleep=lambda _s: None)

    queue.send(messages(15))

    assert flaky.batches == [10, 1, 1, 5, 1, 1]
    assert sorted(m.buckets[0] for m in drain(aws, aws.queue_url)) == list(range(15))


def test_sqs_queue_raises_naming_the_parts_that_keep_failing(
    aws_clients: Callable[..., LocalAws],
) -> None:
    aws = aws_clients()
    flaky = FlakyClient(aws.sqs, refuse={4}, times=100)
    queue = SqsExportQueue(flaky, aws.queue_url, tries=3, sleep=lambda _s: None)

    with pytest.raises(RetryableError, match=r"products/r1 bucket\(s\) 4 \(InternalError: boom\)"):
        queue.send(messages(6))

    assert sorted(m.buckets[0] for m in drain(aws, aws.queue_url)) == [0, 1, 2, 3, 5]


def test_sqs_queue_missing_queue_raises_config_error(
    aws_clients: Callable[..., LocalAws],
) -> None:
    aws = aws_clients()
    url = aws.queue_url + "-missing"
    with pytest.raises(ConfigError, match="-missing"):
        SqsExportQueue(aws.sqs, url).send(messages(1))
