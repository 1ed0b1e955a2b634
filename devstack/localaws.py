"""The local AWS: a moto server (real HTTP) and the resources the template defines.

`start_moto_server()` runs moto's `ThreadedMotoServer` in this process; boto3
clients reach it through its `endpoint_url` (or `AWS_ENDPOINT_URL`, see
`aws_env`). `provision()` creates the snapshot bucket, the state table, the export
queue and the reindex continuation queue (each with its DLQ) and the API key
secret, the way `template.yaml` does. Every moto server in one process shares
moto's in-memory state (and `mock_aws` resets it): give each user of a shared
server its own `ResourceNames`.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import urllib.request
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from catalog_sync.aws.dynamodb import DynamoFeedState
from catalog_sync.aws.s3 import S3BlobStore
from catalog_sync.aws.sqs import SqsExportQueue

if TYPE_CHECKING:  # moto is imported where a server starts: a runner does not need it
    from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
CREDENTIAL = "testing"
DLQ_MAX_RECEIVE_COUNT = 5
EXPORT_VISIBILITY_TIMEOUT = 1800  # as in template.yaml
CONTINUE_VISIBILITY_TIMEOUT = 960  # as in template.yaml (above the reindex timeout)
CONTINUE_MAX_RECEIVE_COUNT = 3


@dataclass(frozen=True)
class ResourceNames:
    bucket: str = "catalog-sync-snapshots"
    table: str = "catalog-sync-state"
    queue: str = "catalog-sync-export"
    dlq: str = "catalog-sync-export-dlq"
    secret: str = "catalog-sync/saas-api-key"
    continue_queue: str = "catalog-sync-continue"
    continue_dlq: str = "catalog-sync-continue-dlq"

    @classmethod
    def unique(cls, tag: str | None = None) -> ResourceNames:
        """Fresh names (for tests sharing one server)."""
        t = tag or uuid.uuid4().hex[:10]
        return cls(
            bucket=f"catalog-sync-snapshots-{t}",
            table=f"catalog-sync-state-{t}",
            queue=f"catalog-sync-export-{t}",
            dlq=f"catalog-sync-export-dlq-{t}",
            secret=f"catalog-sync/saas-api-key-{t}",
            continue_queue=f"catalog-sync-continue-{t}",
            continue_dlq=f"catalog-sync-continue-dlq-{t}",
        )

    def queue_url(self, endpoint_url: str) -> str:
        return f"{endpoint_url.rstrip('/')}/{ACCOUNT_ID}/{self.queue}"

    def dlq_url(self, endpoint_url: str) -> str:
        return f"{endpoint_url.rstrip('/')}/{ACCOUNT_ID}/{self.dlq}"

    def continue_queue_url(self, endpoint_url: str) -> str:
        return f"{endpoint_url.rstrip('/')}/{ACCOUNT_ID}/{self.continue_queue}"


class MotoServerHandle:
    """A running moto server; `stop()` shuts it down."""

    def __init__(self, server: ThreadedMotoServer, host: str, port: int) -> None:
        self._server = server
        self.host = host
        self.port = port
        self.endpoint_url = f"http://{host}:{port}"
        self._stopped = False

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._server.stop()

    def reset(self) -> None:
        """Forget every resource the server holds (moto's `/moto-api/reset`): its state
        lives in this process's memory and only grows otherwise."""
        if not self._stopped:
            request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
            with urllib.request.urlopen(request, timeout=30):
                pass

    def __enter__(self) -> MotoServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_moto_server(host: str = "127.0.0.1", port: int = 0) -> MotoServerHandle:
    """Start a moto server on `host:port` (a free port when 0), in a daemon thread.
    Its per-request access log (werkzeug, INFO) is silenced unless the `werkzeug`
    logger was configured already."""
    access_log = logging.getLogger("werkzeug")
    if access_log.level == logging.NOTSET:
        access_log.setLevel(logging.WARNING)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    _, bound_port = server.get_host_and_port()
    return MotoServerHandle(server, host, bound_port)


def aws_env(endpoint_url: str) -> dict[str, str]:
    """The environment that points boto3 (and the AWS CLI) at a local endpoint."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": CREDENTIAL,
        "AWS_SECRET_ACCESS_KEY": CREDENTIAL,
    }


_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def client(service: str, endpoint_url: str) -> Any:
    """A boto3 client of the local endpoint, with explicit test credentials (reads
    no profile and no environment). Clients are thread-safe and costly to build
    (~0.1 s each), so one per service and endpoint is kept and shared."""
    with _clients_lock:
        made = _clients.get((service, endpoint_url))
        if made is None:
            made = _clients[(service, endpoint_url)] = _session().client(
                service,
                endpoint_url=endpoint_url,
                config=Config(retries={"max_attempts": 2, "mode": "standard"}),
            )
        return made


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=CREDENTIAL,
        aws_secret_access_key=CREDENTIAL,
        region_name=REGION,
    )


def _exists(exc: Exception, *codes: str) -> bool:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code") in codes


def provision(names: ResourceNames, endpoint_url: str, api_key: str) -> None:
    """Create the stack's resources against `endpoint_url`. Idempotent: what exists
    already is kept (the secret gets the new value)."""
    s3 = client("s3", endpoint_url)
    try:
        s3.create_bucket(Bucket=names.bucket)
    except s3.exceptions.ClientError as exc:
        if not _exists(exc, "BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise

    ddb = client("dynamodb", endpoint_url)
    try:
        ddb.create_table(
            TableName=names.table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.update_time_to_live(
            TableName=names.table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
        )
    except ddb.exceptions.ResourceInUseException:
        pass

    sqs = client("sqs", endpoint_url)
    _queue_with_dlq(sqs, names.queue, names.dlq, EXPORT_VISIBILITY_TIMEOUT, DLQ_MAX_RECEIVE_COUNT)
    _queue_with_dlq(
        sqs,
        names.continue_queue,
        names.continue_dlq,
        CONTINUE_VISIBILITY_TIMEOUT,
        CONTINUE_MAX_RECEIVE_COUNT,
    )

    sm = client("secretsmanager", endpoint_url)
    try:
        sm.create_secret(Name=names.secret, SecretString=api_key)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=names.secret, SecretString=api_key)


def _queue_with_dlq(sqs: Any, name: str, dlq: str, visibility: int, max_receives: int) -> None:
    dlq_url = sqs.create_queue(QueueName=dlq)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}
            ),
        },
    )


@dataclass
class LocalAws:
    """Clients of a local endpoint, the resource names, and the adapters over them."""

    endpoint_url: str
    names: ResourceNames
    s3: Any
    dynamodb: Any
    sqs: Any
    secretsmanager: Any
    ssm: Any

    @classmethod
    def connect(cls, endpoint_url: str, names: ResourceNames) -> LocalAws:
        return cls(
            endpoint_url,
            names,
            s3=client("s3", endpoint_url),
            dynamodb=client("dynamodb", endpoint_url),
            sqs=client("sqs", endpoint_url),
            secretsmanager=client("secretsmanager", endpoint_url),
            ssm=client("ssm", endpoint_url),
        )

    @property
    def queue_url(self) -> str:
        return self.names.queue_url(self.endpoint_url)

    @property
    def dlq_url(self) -> str:
        return self.names.dlq_url(self.endpoint_url)

    def blobs(self, prefix: str = "") -> S3BlobStore:
        return S3BlobStore(self.s3, self.names.bucket, prefix)

    def state(self, **kwargs: Any) -> DynamoFeedState:
        kwargs.setdefault("overflow", self.blobs())
        return DynamoFeedState(self.dynamodb, self.names.table, **kwargs)

    def queue(self) -> SqsExportQueue:
        return SqsExportQueue(self.sqs, self.queue_url)
