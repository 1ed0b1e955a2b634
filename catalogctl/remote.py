"""`catalogctl` without `--local`: invoke the deployed functions with the same events.

The functions are found from the CloudFormation stack's outputs.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from catalog_sync.aws.dynamodb import DynamoFeedState
from catalog_sync.aws.s3 import S3BlobStore
from catalog_sync.errors import ConfigError


class RemoteRunner:
    def __init__(self, stack: str, region: str | None = None) -> None:
        self.session = boto3.session.Session(region_name=region)
        cfn = self.session.client("cloudformation")
        try:
            stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
        except cfn.exceptions.ClientError as exc:
            raise ConfigError(f"cannot read stack {stack!r}: {exc}") from None
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        for needed in ("ReindexFunctionName", "StateTableName", "SnapshotBucketName"):
            if needed not in self.outputs:
                raise ConfigError(f"stack {stack!r} has no output {needed}: is it catalog-sync?")

    def reindex(self, event: dict[str, Any]) -> dict[str, Any]:
        client = self.session.client("lambda")
        resp = client.invoke(
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
        overflow = S3BlobStore(self.session.client("s3"), self.outputs["SnapshotBucketName"])
        return DynamoFeedState(
            self.session.client("dynamodb"), self.outputs["StateTableName"], overflow=overflow
        )
