"""The template as CloudFormation creates it (issue 10, item 10): translated by
samtranslator (what `sam deploy` does), created in moto's CloudFormation over HTTP,
and catalogctl finds everything it needs in the stack's outputs."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint import decode as cfnlint_decode
from samtranslator.translator.transform import transform

from catalogctl.remote import NEEDED_OUTPUTS, RemoteRunner

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
# moto's CloudFormation turns an `!If [cond, policy, AWS::NoValue]` role policy whose
# condition is false into None and fails; these parameters make every such condition true.
PARAMS = {
    "SaasBaseUrl": "https://feeds.example.com",
    "SaasEnvironmentId": "env-1",
    "SaasApiKeySecretId": "catalog-sync/saas-api-key",
    "CatalogSource": "s3://shop-exports/magento/catalog.csv",
    "MagentoTokenSecretId": "catalog-sync/magento-token",
    "AlarmEmail": "ops@example.com",
}


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def _translated(artifacts: str) -> dict[str, Any]:
    tpl, matches = cfnlint_decode.decode_str(TEMPLATE.read_text())
    assert not matches and tpl is not None
    doc = json.loads(json.dumps(tpl, default=str))
    # `sam package` replaces the local code folders by S3 objects
    for name in ("ReindexFunction", "ExportFunction"):
        doc["Resources"][name]["Properties"]["CodeUri"] = f"s3://{artifacts}/{name}.zip"
    doc["Resources"]["CoreLayer"]["Properties"]["ContentUri"] = f"s3://{artifacts}/layer.zip"
    out: dict[str, Any] = transform(doc, PARAMS, _NoManagedPolicies())
    return out


@pytest.fixture(scope="module")
def deployed(moto_endpoint: str, monkeypatch_module: Any) -> tuple[str, Any, dict[str, Any]]:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    artifacts = f"artifacts-{uuid.uuid4().hex[:8]}"
    s3 = session.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=artifacts)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return {}\n")
    for key in ("ReindexFunction.zip", "ExportFunction.zip", "layer.zip"):
        s3.put_object(Bucket=artifacts, Key=key, Body=code.getvalue())
    template = _translated(artifacts)
    name = f"catalog-sync-{uuid.uuid4().hex[:8]}"
    cfn = session.client("cloudformation", endpoint_url=moto_endpoint)
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMS.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    return name, session, template


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")  # samtranslator needs a region
    yield mp
    mp.undo()


def test_the_translated_template_has_what_the_stack_needs(deployed: Any) -> None:
    _, _, template = deployed
    types = {r["Type"] for r in template["Resources"].values()}
    assert not any(t.startswith("AWS::Serverless::") for t in types)
    assert {
        "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping",
        "AWS::Events::Rule",
        "AWS::SNS::Topic",
        "AWS::SNS::Subscription",
        "AWS::CloudWatch::Dashboard",
    } <= types
    subs = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SNS::Subscription"
    ]
    assert [(p["Protocol"], p["Endpoint"]) for p in subs] == [("email", {"Ref": "AlarmEmail"})]
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    text = json.dumps(roles)
    for broad in ("S3CrudPolicy", "dynamodb:Scan", "s3:PutObjectAcl", "PutLifecycle"):
        assert broad not in text
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert all(f["Properties"]["TracingConfig"] == {"Mode": "Active"} for f in functions)


def test_the_stack_is_created_and_catalogctl_finds_everything(
    deployed: Any, moto_endpoint: str
) -> None:
    name, session, _ = deployed
    cfn = session.client("cloudformation", endpoint_url=moto_endpoint)
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    runner = RemoteRunner(name, session=session, endpoint_url=moto_endpoint)
    out = runner.outputs
    assert set(NEEDED_OUTPUTS) | {"ExportDLQUrl", "AlarmTopicArn", "DashboardName"} <= set(out)
    # every output names a resource that exists
    session.client("lambda", endpoint_url=moto_endpoint).get_function(
        FunctionName=out["ReindexFunctionName"]
    )
    session.client("s3", endpoint_url=moto_endpoint).head_bucket(Bucket=out["SnapshotBucketName"])
    sqs = session.client("sqs", endpoint_url=moto_endpoint)
    for url in (out["ExportQueueUrl"], out["ExportDLQUrl"], out["ContinueQueueUrl"]):
        queue = url.rsplit("/", 1)[1]
        assert sqs.get_queue_url(QueueName=queue)["QueueUrl"].endswith(queue)
    table = session.client("dynamodb", endpoint_url=moto_endpoint).describe_table(
        TableName=out["StateTableName"]
    )["Table"]
    assert {k["AttributeName"] for k in table["KeySchema"]} == {"pk", "sk"}
    assert runner.state().read_meta("products") is None  # the state adapter reads it
    sns = session.client("sns", endpoint_url=moto_endpoint)
    # (moto's CloudFormation does not create the email subscription; the translated
    # template's is checked above)
    attrs = sns.get_topic_attributes(TopicArn=out["AlarmTopicArn"])["Attributes"]
    assert attrs["TopicArn"] == out["AlarmTopicArn"]
