"""The embedded local stack and the in-process runner behind `catalogctl --local`.

The stack: a moto server (real HTTP; real boto3 clients reach it through
`AWS_ENDPOINT_URL`), the resources the template defines, and the local SaaS feed
receiver. The runner calls the Lambda handlers in `functions/` in this process
with the same events `sam local invoke` would pass (moto's Lambda cannot run our
code without Docker, and its EventBridge schedules never fire), then plays the
SQS event source mappings: it receives the export messages and hands them to the
export handler in SQS events, deleting what succeeded; and it delivers the reindex
continuations (a run whose invocation ran out of time) to the reindex handler the same
way, before `reindex` returns.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from catalog_sync.app import App, use_app
from catalog_sync.errors import AuthError, ConfigError
from catalog_sync.observability import log_to_terminal
from catalog_sync.settings import Settings
from catalog_sync.sync.reindex import Progress
from devstack.localaws import (
    CONTINUE_VISIBILITY_TIMEOUT,
    ResourceNames,
    aws_env,
    provision,
    start_moto_server,
)
from devstack.receiver import FeedReceiver

REPO = Path(__file__).resolve().parent.parent
DEFAULT_AWS_PORT = 5055
DEFAULT_RECEIVER_PORT = 8787
LOCAL_API_KEY = "local-demo-key-0123456789"
LOCAL_ENVIRONMENT_ID = "local-env"
SOURCE_PARAMETER = "/catalog-sync/local/catalog-source"


def local_env(
    aws_endpoint: str, receiver_url: str, names: ResourceNames | None = None
) -> dict[str, str]:
    """The environment the other commands need to reach a local stack."""
    names = names or ResourceNames()
    return {
        **aws_env(aws_endpoint),
        "SAAS_BASE_URL": receiver_url,
        "SAAS_ENVIRONMENT_ID": LOCAL_ENVIRONMENT_ID,
        "SAAS_API_KEY_SECRET_ID": names.secret,
        "SNAPSHOT_BUCKET": names.bucket,
        "STATE_TABLE": names.table,
        "EXPORT_QUEUE_URL": names.queue_url(aws_endpoint),
        "EXPORT_DLQ_URL": names.dlq_url(aws_endpoint),
        "CONTINUE_QUEUE_URL": names.continue_queue_url(aws_endpoint),
        "POWERTOOLS_METRICS_DISABLED": "true",
    }


def default_local_env() -> dict[str, str]:
    """What `catalogctl --local` uses: the environment, else the documented defaults."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", f"http://127.0.0.1:{DEFAULT_AWS_PORT}")
    receiver = os.environ.get("SAAS_BASE_URL", f"http://127.0.0.1:{DEFAULT_RECEIVER_PORT}")
    env = local_env(endpoint, receiver)
    env.update({k: v for k, v in os.environ.items() if k in env or k in _SETTING_NAMES})
    return env


_SETTING_NAMES = {name.upper() for name in Settings.model_fields}


@dataclass
class LocalStack:
    """The embedded stack, in this process (threads)."""

    aws_port: int = 0
    receiver_port: int = 0
    source: str | None = None
    api_key: str = LOCAL_API_KEY
    receiver_max_items: int = 1000
    names: ResourceNames = field(default_factory=ResourceNames)
    aws_endpoint: str | None = None  # use this running moto server instead of starting one
    env: dict[str, str] = field(default_factory=dict)
    _moto: Any = None
    receiver: FeedReceiver | None = None
    target: str = "commerce-services"  # or "aco": the local ACO emulator instead
    aco: Any = None
    # the feed receiver in a process of its own (`catalogctl local up`), as the SaaS
    # side is: its parsing does not share this process's interpreter with moto's
    receiver_process: bool = False
    _receiver_proc: subprocess.Popen[str] | None = None

    def start(self) -> LocalStack:
        if self.aws_endpoint is None:
            self._moto = start_moto_server(port=self.aws_port)
            self.aws_endpoint = self._moto.endpoint_url
        endpoint = self.aws_endpoint
        provision(self.names, endpoint, self.api_key)
        if self.target == "aco":
            from devstack.aco_emulator import start_local_aco

            self.aco, aco_env = start_local_aco(endpoint, port=self.receiver_port)
            self.env = {**local_env(endpoint, self.aco.url, self.names), **aco_env}
        elif self.receiver_process:
            self._receiver_proc, url = start_receiver_process(
                self.receiver_port, self.api_key, self.receiver_max_items
            )
            self.env = local_env(endpoint, url, self.names)
        else:
            self.receiver = FeedReceiver(
                port=self.receiver_port, api_key=self.api_key, max_items=self.receiver_max_items
            )
            self.receiver.start()
            self.env = local_env(endpoint, self.receiver.url, self.names)
        if self.source:
            set_local_source(self.env, self.source)
            self.env["CATALOG_SOURCE"] = self.source
        return self

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
        if self._receiver_proc is not None:
            stop_process(self._receiver_proc)
            self._receiver_proc = None
        if self.aco is not None:
            self.aco.stop()
        if self._moto is not None:
            self._moto.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_receiver_process(
    port: int, api_key: str, max_items: int
) -> tuple[subprocess.Popen[str], str]:
    """`python -m devstack.receiver` in a child process that ends with this one; the
    child and its URL (from its first line: `port=0` picks a free port)."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "devstack.receiver", "--port", str(port),
            "--max-items", str(max_items), "--parent", str(os.getpid()),
        ],
        env={**os.environ, "RECEIVER_API_KEY": api_key},  # the key: not in argv
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if match is None:
        stop_process(proc)
        raise ConfigError(f"the feed receiver did not start: {line.strip() or 'no output'}")
    return proc, match.group(1)


def stop_process(proc: subprocess.Popen[str], timeout: float = 10) -> None:
    """Ctrl-C a child, or kill it when it does not stop in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def _session(env: Mapping[str, str]) -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "testing"),
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
    )


def set_local_source(env: Mapping[str, str], source: str) -> None:
    """Remember the catalog source of a local stack (in its SSM), for later commands."""
    ssm = _session(env).client("ssm", endpoint_url=env["AWS_ENDPOINT_URL"])
    ssm.put_parameter(Name=SOURCE_PARAMETER, Value=source, Type="String", Overwrite=True)


def get_local_source(env: Mapping[str, str]) -> str | None:
    ssm = _session(env).client("ssm", endpoint_url=env["AWS_ENDPOINT_URL"])
    try:
        value: str = ssm.get_parameter(Name=SOURCE_PARAMETER)["Parameter"]["Value"]
        return value
    except ssm.exceptions.ParameterNotFound:
        return None


def _load_handler(function: str) -> ModuleType:
    path = REPO / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"catalog_sync_fn_{function}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load the {function} handler from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContextStub:
    """The attributes of a Lambda context that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@dataclass
class DrainResult:
    succeeded: int = 0
    failed_attempts: int = 0
    invocations: int = 0  # export handler calls


class LocalRunner:
    """Runs the handlers in this process against a local stack."""

    def __init__(self, env: Mapping[str, str], *, progress: Progress | None = None) -> None:
        self.env = dict(env)
        if "CATALOG_SOURCE" not in self.env:
            source = get_local_source(self.env)
            if source:
                self.env["CATALOG_SOURCE"] = source
        # Your own machine: `--local --source` may name any file on it (a deployed
        # stack allows only CATALOG_SOURCE's folder, see catalog_sync.source_policy).
        self.env.setdefault("CATALOG_SOURCE_ALLOW", os.sep)
        # A terminal wants the CLI's own lines, not the handlers' JSON logs and EMF
        # metrics: those stay off unless asked for (CATALOG_SYNC_LOG_LEVEL=INFO).
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        log_to_terminal(self.env.get("CATALOG_SYNC_LOG_LEVEL", "WARNING"))
        self.session = _session(self.env)
        self.endpoint = self.env["AWS_ENDPOINT_URL"]
        self.app = App(
            settings=Settings.from_env(self.env),
            session=self.session,
            endpoint_url=self.endpoint,
            progress=progress,
        )
        self.sqs = self.app.client("sqs")
        self._reindex = _load_handler("reindex")
        self._export = _load_handler("export")

    @contextmanager
    def _installed(self) -> Iterator[None]:
        use_app(self.app)
        try:
            yield
        finally:
            use_app(None)

    def reindex(self, event: dict[str, Any], *, follow: bool = True) -> dict[str, Any]:
        """Invoke the reindex handler; a run handed on to follow-up invocations is
        followed to its end (`follow`), and the runs are reported as they ended."""
        with self._installed():
            result: dict[str, Any] = self._reindex.handler(
                event, LambdaContextStub("catalog-sync-reindex")
            )
        runs = result.get("runs", [])
        if follow and any(r.get("continues") for r in runs):
            result["invocations"] = 1 + self.continue_runs()
            state = self.app.state
            for i, run in enumerate(runs):
                record = state.get_run(run["feed"], run["run_id"])
                if record is not None:
                    runs[i] = {**record.model_dump(mode="json"), "continues": False}
        return result

    def continue_runs(self, limit: int | None = None) -> int:
        """Deliver continuation messages to the reindex handler in SQS events, one at a
        time, until the queue is empty (or `limit` were delivered); return how many. A
        failed one goes back at once (Lambda waits the visibility timeout), and after
        the queue's maxReceiveCount to its DLQ."""
        url = self.app.settings.continue_queue_url
        delivered = 0
        with self._installed():
            while url and (limit is None or delivered < limit):
                messages = self.sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=1,
                    AttributeNames=["All"],
                    VisibilityTimeout=CONTINUE_VISIBILITY_TIMEOUT,
                ).get("Messages", [])
                if not messages:
                    break
                m = messages[0]
                event = {"Records": [_sqs_record(m, url)]}
                result = self._reindex.handler(event, LambdaContextStub("catalog-sync-reindex"))
                delivered += 1
                if result.get("batchItemFailures"):
                    self.sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return delivered

    def drain(
        self,
        *,
        max_seconds: float = 600,
        max_invocations: int | None = None,
        batch_size: int = 10,
        concurrency: int | None = None,
    ) -> DrainResult:
        """Deliver queued export messages to the export handler until the queue is
        empty (failing messages go back and, after maxReceiveCount, to the DLQ), or
        after `max_invocations` handler calls of up to `batch_size` messages each.

        `concurrency` (default `LOCAL_EXPORT_CONCURRENCY`, else 1): how many consumers
        take messages at once, as the export function's reserved concurrency lets
        Lambda run that many invocations. Above 1, each consumer is a process of its
        own (spawned: its own interpreter and clients, as a Lambda instance is) that
        takes one message at a time, so the messages spread over the consumers; the
        first error a consumer raises is raised here once all have stopped."""
        n = concurrency if concurrency is not None else export_concurrency(self.env)
        if n < 1:
            raise ConfigError(f"export concurrency must be 1 or more, not {n}")
        if n > 1 and max_invocations is not None:
            raise ConfigError("max_invocations counts one consumer's calls: concurrency 1")
        depth = queue_depth(self.sqs, self.app.settings.export_queue_url) if n > 1 else 0
        if depth > 1:  # one message or none: no process is worth starting for it
            return self._drain_concurrently(min(n, depth), max_seconds=max_seconds)
        return self._drain(
            max_seconds=max_seconds, max_invocations=max_invocations, batch_size=batch_size
        )

    def _drain_concurrently(self, n: int, *, max_seconds: float) -> DrainResult:
        ctx = multiprocessing.get_context("spawn")  # no copy of this process's memory
        out = DrainResult()
        first_error: BaseException | None = None
        with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
            futures = [pool.submit(_consume, self.env, max_seconds) for _ in range(n)]
            for future in futures:  # every consumer to its end, then the first error
                try:
                    part = future.result()
                except Exception as exc:  # raised below, once every consumer has stopped
                    first_error = first_error or exc
                    continue
                out.succeeded += part.succeeded
                out.failed_attempts += part.failed_attempts
                out.invocations += part.invocations
        if first_error is not None:
            raise first_error
        return out

    def _drain(
        self,
        *,
        max_seconds: float,
        max_invocations: int | None,
        batch_size: int,
        wait_seconds: int = 0,
    ) -> DrainResult:
        queue_url = self.app.settings.export_queue_url
        out = DrainResult()
        deadline = time.monotonic() + max_seconds
        with self._installed():
            while time.monotonic() < deadline:
                if max_invocations is not None and out.invocations >= max_invocations:
                    break
                resp = self.sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=batch_size,
                    AttributeNames=["All"],
                    VisibilityTimeout=30,
                    WaitTimeSeconds=wait_seconds,
                )
                messages = resp.get("Messages", [])
                if not messages:
                    if self._in_flight(queue_url) == 0:
                        break
                    time.sleep(0.05)
                    continue
                event = {"Records": [_sqs_record(m, queue_url) for m in messages]}
                result = self._export.handler(event, LambdaContextStub("catalog-sync-export"))
                out.invocations += 1
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
                done = [m for m in messages if m["MessageId"] not in failed]
                if done:
                    self.sqs.delete_message_batch(
                        QueueUrl=queue_url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(done)
                        ],
                    )
                retry = [m for m in messages if m["MessageId"] in failed]
                if retry:  # back to the queue at once (Lambda would wait the visibility timeout)
                    self.sqs.change_message_visibility_batch(
                        QueueUrl=queue_url,
                        Entries=[
                            {
                                "Id": str(i),
                                "ReceiptHandle": m["ReceiptHandle"],
                                "VisibilityTimeout": 0,
                            }
                            for i, m in enumerate(retry)
                        ],
                    )
                    self._raise_on_auth_error(messages)
                out.succeeded += len(done)
                out.failed_attempts += len(retry)
        return out

    def _in_flight(self, queue_url: str) -> int:
        return queue_depth(self.sqs, queue_url)

    def _raise_on_auth_error(self, messages: list[dict[str, Any]]) -> None:
        from catalog_sync.sync.snapshot import ExportMessage

        state = self.app.state
        for m in messages:
            msg = ExportMessage.model_validate_json(m["Body"])
            for part in state.list_part_results(msg.feed, msg.run_id):
                if part.bucket in msg.buckets and part.error and part.error.startswith("AuthError"):
                    raise AuthError(part.error.removeprefix("AuthError: "))


def export_concurrency(env: Mapping[str, str]) -> int:
    """`LOCAL_EXPORT_CONCURRENCY` of the runner's environment, else the process's, else 1."""
    raw = env.get("LOCAL_EXPORT_CONCURRENCY") or os.environ.get("LOCAL_EXPORT_CONCURRENCY")
    if not raw:
        return 1
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"LOCAL_EXPORT_CONCURRENCY must be a whole number, not {raw!r}") from None


def _consume(env: dict[str, str], max_seconds: float) -> DrainResult:
    """One export consumer of a concurrent drain, in a process of its own: messages
    one at a time until the queue is empty and none is in flight."""
    # long polling: an idle consumer waits in the queue for the others' handbacks,
    # rather than asking again every 50 ms
    return LocalRunner(env)._drain(
        max_seconds=max_seconds, max_invocations=None, batch_size=1, wait_seconds=1
    )


def _sqs_record(m: dict[str, Any], queue_url: str) -> dict[str, Any]:
    name = queue_url.rsplit("/", 1)[-1]
    return {
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{name}",
        "awsRegion": "us-east-1",
    }


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Messages in a queue: visible, in flight or delayed (handed back for later)."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attrs.get(name, 0)) for name in names)


__all__ = [
    "DEFAULT_AWS_PORT",
    "DEFAULT_RECEIVER_PORT",
    "LocalRunner",
    "LocalStack",
    "default_local_env",
    "local_env",
]
