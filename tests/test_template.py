"""The SAM template: lints clean and wires what the application expects.

cfn-lint runs in-process (the library from the project venv, with the SAM transform).
The template is read with cfn-lint's own decoder, which understands the short-form
intrinsic functions (!Ref, !Sub, !If...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint import api as cfnlint_api
from cfnlint import decode as cfnlint_decode

from catalog_sync.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
FUNCTIONS = ("ReindexFunction", "ExportFunction")
POWERTOOLS_VARS = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_METRICS_NAMESPACE",
}
APP_VARS = {
    "SNAPSHOT_BUCKET",
    "STATE_TABLE",
    "EXPORT_QUEUE_URL",
    "SAAS_BASE_URL",
    "SAAS_ENVIRONMENT_ID",
    "SAAS_API_KEY_SECRET_ID",
    "CATALOG_SOURCE",
    "STORE_VIEWS",
    "WORK_DIR",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    tpl, matches = cfnlint_decode.decode_str(TEMPLATE.read_text())
    assert not matches, [m.message for m in matches]
    assert tpl is not None
    return tpl


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _props(resources: dict[str, Any], name: str) -> dict[str, Any]:
    return resources[name]["Properties"]


def _function_env(template: dict[str, Any], name: str) -> dict[str, Any]:
    """The function's environment as deployed: Globals merged with its own."""
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    own = template["Resources"][name]["Properties"].get("Environment", {})
    env.update(own.get("Variables", {}))
    return env


def _function_setting(template: dict[str, Any], name: str, key: str) -> Any:
    props = template["Resources"][name]["Properties"]
    return props.get(key, template["Globals"]["Function"].get(key))


def test_template_lints_without_errors_or_warnings() -> None:
    matches = cfnlint_api.lint_all(TEMPLATE.read_text())
    problems = [
        f"{m.rule.id} line {m.linenumber}: {m.message}"
        for m in matches
        if m.rule.id[0] in ("E", "W")
    ]
    assert problems == []


def test_template_lint_catches_a_broken_template() -> None:
    # Guards the test above: lint_all must really report errors for this template type.
    broken = TEMPLATE.read_text().replace("BillingMode: PAY_PER_REQUEST", "BillingMode: FREE")
    matches = cfnlint_api.lint_all(broken)
    assert any(m.rule.id.startswith("E") for m in matches)


def test_template_state_table_has_pk_sk_key_schema(resources: dict[str, Any]) -> None:
    table = resources["StateTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    props = table["Properties"]
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {(a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
    }
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


def test_template_reindex_runs_on_the_sync_and_resend_schedules(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    events = _props(resources, "ReindexFunction")["Events"]
    schedules = {n: e["Properties"] for n, e in events.items() if e["Type"] == "Schedule"}
    assert set(schedules) == {"HourlySync", "ResendWaiting"}
    assert schedules["HourlySync"]["Schedule"] == {"Ref": "SyncSchedule"}
    # No Input: the function gets the standard "Scheduled Event".
    assert "Input" not in schedules["HourlySync"]
    assert template["Parameters"]["SyncSchedule"]["Default"] == "rate(1 hour)"
    assert schedules["ResendWaiting"]["Schedule"] == {"Ref": "ResendSchedule"}
    assert json.loads(schedules["ResendWaiting"]["Input"]) == {"action": "resend"}


def test_template_reindex_sizing(template: dict[str, Any], resources: dict[str, Any]) -> None:
    props = _props(resources, "ReindexFunction")
    assert props["Handler"] == "app.handler"
    assert props["CodeUri"] == "functions/reindex/"
    assert props["Timeout"] == 900
    # two vCPUs for the two worker processes that compile a large CSV
    assert props["MemorySize"] == 2 * 1769
    assert props["Environment"]["Variables"]["REINDEX_WORKERS"] == "2"
    assert props["EphemeralStorage"] == {"Size": 4096}
    assert _function_setting(template, "ReindexFunction", "Runtime") == "python3.11"


def test_template_export_queue_redrives_to_dlq(resources: dict[str, Any]) -> None:
    queue = _props(resources, "ExportQueue")
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["ExportDLQ", "Arn"]},
        "maxReceiveCount": 5,
    }
    assert _props(resources, "ExportDLQ")["MessageRetentionPeriod"] == 14 * 24 * 3600
    alarm = _props(resources, "ExportDLQAlarm")
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["ExportDLQ", "QueueName"]}


def test_template_export_queue_visibility_is_six_times_export_timeout(
    resources: dict[str, Any],
) -> None:
    timeout = _props(resources, "ExportFunction")["Timeout"]
    assert _props(resources, "ExportQueue")["VisibilityTimeout"] == 6 * timeout


def test_template_export_consumes_queue_with_partial_batch_failures(
    resources: dict[str, Any],
) -> None:
    events = _props(resources, "ExportFunction")["Events"]
    sqs = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
    assert len(sqs) == 1
    assert sqs[0]["Queue"] == {"Fn::GetAtt": ["ExportQueue", "Arn"]}
    assert sqs[0]["BatchSize"] == 5
    assert sqs[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs[0]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "ExportConcurrency"}}


def test_template_reindex_consumes_its_continuation_queue(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """A run whose invocation runs low on time hands itself on through this queue."""
    events = _props(resources, "ReindexFunction")["Events"]
    [sqs] = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
    assert sqs["Queue"] == {"Fn::GetAtt": ["ReindexContinueQueue", "Arn"]}
    assert sqs["BatchSize"] == 1  # one continuation per invocation: its whole budget
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = _props(resources, "ReindexContinueQueue")
    # a crashed continuation comes back only after the invocation is surely over
    assert queue["VisibilityTimeout"] > _props(resources, "ReindexFunction")["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["ReindexContinueDLQ", "Arn"]
    }
    alarm = _props(resources, "ReindexContinueDLQAlarm")
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["ReindexContinueDLQ", "QueueName"]}
    env = _function_env(template, "ReindexFunction")
    assert env["CONTINUE_QUEUE_URL"] == {"Ref": "ReindexContinueQueue"}
    assert env["RUN_TIME_BUDGET_SECONDS"] == {
        "Fn::If": ["HasRunBudget", {"Ref": "RunTimeBudgetSeconds"}, {"Ref": "AWS::NoValue"}]
    }
    sends = [
        stmt["Resource"]
        for stmt in _statements(resources, "ReindexFunction")
        if stmt["Action"] == "sqs:SendMessage"
    ]
    assert {"Fn::GetAtt": ["ReindexContinueQueue", "Arn"]} in sends
    rules = _props(resources, "SnapshotBucket")["LifecycleConfiguration"]["Rules"]
    [staged] = [r for r in rules if r.get("Prefix") == "continuations/"]
    assert staged["ExpirationInDays"] > 0  # what a stalled run staged does not stay


def test_template_a_continued_runs_lease_outlives_the_continuation_retry(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """A continuation that crashes or times out comes back after the queue's
    visibility timeout; the run's lease must still be its own then (sync/lease.py)."""
    from catalog_sync.sync.lease import REDELIVERY_MARGIN_SECONDS, handed_on_ttl

    visibility = _props(resources, "ReindexContinueQueue")["VisibilityTimeout"]
    timeout = _props(resources, "ReindexFunction")["Timeout"]
    env = _function_env(template, "ReindexFunction")
    assert int(env["CONTINUE_VISIBILITY_SECONDS"]) == visibility  # the settings agree
    # LEASE_SECONDS is not set by the template: its default holds
    assert "LEASE_SECONDS" not in env
    lease = Settings.model_fields["lease_seconds"].default
    # an invocation never outlasts its own lease, nor a retry the lease it left
    assert lease >= timeout
    assert visibility > timeout
    ttl = handed_on_ttl(lease, int(env["CONTINUE_VISIBILITY_SECONDS"]))
    assert ttl >= visibility + REDELIVERY_MARGIN_SECONDS > visibility
    # the local stack's queue is made as the template makes it
    from devstack.localaws import CONTINUE_VISIBILITY_TIMEOUT

    assert visibility == CONTINUE_VISIBILITY_TIMEOUT


def test_template_functions_use_the_core_layer(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    layer = resources["CoreLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/core/"
    assert layer["Metadata"]["BuildMethod"] == "python3.11"
    assert (ROOT / "layers/core/requirements.txt").is_file()
    for name in FUNCTIONS:
        assert _function_setting(template, name, "Layers") == [{"Ref": "CoreLayer"}]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_template_env_vars_are_settings_fields(template: dict[str, Any], name: str) -> None:
    env = set(_function_env(template, name))
    fields = {f.upper() for f in Settings.model_fields}
    unknown = env - fields - POWERTOOLS_VARS
    assert unknown == set(), f"{name}: env vars that Settings does not read: {sorted(unknown)}"
    missing = APP_VARS - env
    assert missing == set(), f"{name}: env vars missing: {sorted(missing)}"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_template_env_sets_every_required_setting(template: dict[str, Any], name: str) -> None:
    env = set(_function_env(template, name))
    required = {f.upper() for f, info in Settings.model_fields.items() if info.is_required()}
    assert required <= env


def test_template_outputs_name_the_deployed_resources(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    expected = {
        "ReindexFunctionName": "ReindexFunction",
        "ExportFunctionName": "ExportFunction",
        "SnapshotBucketName": "SnapshotBucket",
        "StateTableName": "StateTable",
        "ExportQueueUrl": "ExportQueue",
        "ExportDLQUrl": "ExportDLQ",
    }
    assert {k: outputs[k]["Value"] for k in expected} == {
        k: {"Ref": v} for k, v in expected.items()
    }


def test_template_parameters_are_all_declared(template: dict[str, Any]) -> None:
    params = set(template["Parameters"])
    assert {
        "SaasBaseUrl",
        "SaasEnvironmentId",
        "SaasApiKeySecretId",
        "CatalogSource",
        "CatalogSourceBucket",
        "StoreViews",
        "SyncSchedule",
        "ExportConcurrency",
        "SnapshotRetentionDays",
        "LogLevel",
    } <= params
    assert template["Parameters"]["StoreViews"]["Default"] == "default:base"
    assert template["Parameters"]["ExportConcurrency"]["Default"] == 5


def test_template_snapshot_bucket_is_private_and_encrypted(resources: dict[str, Any]) -> None:
    props = _props(resources, "SnapshotBucket")
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]


def test_template_storage_survives_a_point_in_time_restore(resources: dict[str, Any]) -> None:
    # Overflow state objects replaced since the restore point keep a noncurrent version
    # at least as long as PITR reaches back (35 days).
    props = _props(resources, "SnapshotBucket")
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"] if "Id" in r}
    noncurrent = rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"]
    assert noncurrent == {"NoncurrentDays": {"Ref": "NoncurrentVersionDays"}}
    template = cfnlint_decode.decode_str(TEMPLATE.read_text())[0]
    assert template is not None
    assert template["Parameters"]["NoncurrentVersionDays"]["MinValue"] >= 35
    table = _props(resources, "StateTable")
    assert table["DeletionProtectionEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}


def test_template_function_code_dirs_exist(resources: dict[str, Any]) -> None:
    for name in FUNCTIONS:
        code = ROOT / _props(resources, name)["CodeUri"]
        assert code.is_dir(), f"{name}: CodeUri {code} is missing"


def _statements(resources: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Every policy statement of a function, both branches of an !If."""
    out: list[dict[str, Any]] = []
    for policy in _props(resources, name)["Policies"]:
        if "Fn::If" in policy:
            policy = policy["Fn::If"][1]
        for stmt in policy.get("Statement", []):
            out.append(stmt["Fn::If"][1] if "Fn::If" in stmt else stmt)
    return out


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for stmt in statements:
        action = stmt["Action"]
        out.update([action] if isinstance(action, str) else action)
    return out


# What the adapters in catalog_sync/aws/ call, as IAM actions (boto3 method -> action).
ADAPTER_CALLS = {
    "batch_get_item": "dynamodb:BatchGetItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "query": "dynamodb:Query",
    "delete_item": "dynamodb:DeleteItem",
    "get_object": "s3:GetObject",
    "head_object": "s3:GetObject",
    "put_object": "s3:PutObject",
    "upload_file": "s3:PutObject",
    "list_objects_v2": "s3:ListBucket",
    "delete_objects": "s3:DeleteObject",
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_template_grants_only_the_calls_the_code_makes(
    resources: dict[str, Any], name: str
) -> None:
    policies = _props(resources, name)["Policies"]
    assert not any(
        k in p for p in policies for k in ("S3CrudPolicy", "DynamoDBCrudPolicy", "S3ReadPolicy")
    )
    actions = _actions(_statements(resources, name))
    assert not actions & {
        "s3:PutObjectAcl",
        "s3:PutLifecycleConfiguration",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
        "s3:*",
        "dynamodb:*",
    }
    assert not any(a.endswith("*") for a in actions)
    code = "".join(p.read_text() for p in (ROOT / "layers/core/catalog_sync/aws").glob("*.py"))
    used = {action for call, action in ADAPTER_CALLS.items() if f"{call}" in code}
    assert {"dynamodb:DeleteItem", "s3:DeleteObject"} <= used  # lease release, pruning
    assert used <= actions, used - actions
    if name == "ReindexFunction":
        assert "sqs:SendMessage" in actions
    else:
        assert {"secretsmanager:GetSecretValue", "ssm:GetParameter", "kms:Decrypt"} <= actions


def test_template_source_read_grant_only_for_an_s3_source(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    grant = [
        p for p in _props(resources, "ReindexFunction")["Policies"]
        if "Fn::If" in p and p["Fn::If"][0] == "ReadsSourceBucket"
    ]  # fmt: skip
    assert len(grant) == 1 and grant[0]["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    assert _actions(grant[0]["Fn::If"][1]["Statement"]) == {"s3:GetObject"}
    cond = template["Conditions"]
    assert cond["ReadsSourceBucket"] == {
        "Fn::Or": [{"Condition": "HasSourceBucket"}, {"Condition": "IsS3Source"}]
    }
    assert cond["IsS3Source"] == {
        "Fn::Equals": [{"Fn::Select": [0, {"Fn::Split": ["://", {"Ref": "CatalogSource"}]}]}, "s3"]
    }


def test_template_urls_are_https_only(template: dict[str, Any]) -> None:
    import re

    params = template["Parameters"]
    for name in ("SaasBaseUrl", "CatalogSource"):
        pattern = re.compile(params[name]["AllowedPattern"])
        assert not pattern.match("http://api.example.com"), name
        assert not pattern.match("file:///proc/self/environ"), name
        assert pattern.match("https://api.example.com"), name


def test_template_alarms_notify_the_stacks_topic(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert resources["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert resources["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"
    alarms = {
        n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    wanted = {
        ("AWS/Lambda", "Errors", "ExportFunction"),
        ("AWS/Lambda", "Throttles", "ExportFunction"),
        ("AWS/Lambda", "Errors", "ReindexFunction"),
        ("AWS/Lambda", "Duration", "ReindexFunction"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "ExportDLQ"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "ExportQueue"),
        ("CatalogSync", "ItemsFailed", None),
        ("CatalogSync", "RunsHeld", None),
        ("CatalogSync", "SyncSucceeded", None),
    }
    seen = set()
    for props in alarms.values():
        dim = props["Dimensions"][0]["Value"]
        target = (
            dim.get("Ref") or dim.get("Fn::GetAtt", [None])[0] if isinstance(dim, dict) else None
        )
        seen.add((props["Namespace"], props["MetricName"], target))
        topic = {"Ref": "AlarmTopic"}
        assert topic in props["AlarmActions"]["Fn::If"][2], props["MetricName"]
    assert wanted <= seen
    duration = next(p for p in alarms.values() if p["MetricName"] == "Duration")
    assert duration["Threshold"] < _props(resources, "ReindexFunction")["Timeout"] * 1000
    heartbeat = next(p for p in alarms.values() if p["MetricName"] == "SyncSucceeded")
    assert heartbeat["TreatMissingData"] == "breaching"
    assert heartbeat["EvaluationPeriods"] == {"Ref": "NoSyncAlarmHours"}
    assert heartbeat["Dimensions"] == [{"Name": "service", "Value": "catalog-sync"}]


def test_template_dashboard_and_tracing(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Globals"]["Function"]["Tracing"] == "Active"
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    doc = json.loads(body[0].replace("${AWS::Region}", "r"))
    text = json.dumps(doc)
    for metric in ("ItemsNew", "ItemsChanged", "ItemsDeleted", "ItemsSent", "ItemsFailed",
                   "SyncSucceeded", "ApproximateNumberOfMessagesVisible", "Duration"):  # fmt: skip
        assert metric in text, metric
    assert "{CatalogSync,feed,service}" in text  # per feed


def test_template_checkov_skips_are_named_with_reasons(resources: dict[str, Any]) -> None:
    skips = [
        skip
        for r in resources.values()
        for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for skip in skips:
        assert skip["id"].startswith("CKV_") and len(skip["comment"]) > 40, skip


def test_template_held_runs_alarm_watches_the_metric_the_code_emits(
    resources: dict[str, Any],
) -> None:
    """app.py emits RunsHeld per feed and, for this alarm, a total with the service
    dimension only (an alarm cannot sum over the feed dimension)."""
    from catalog_sync.observability import NAMESPACE, SERVICE

    alarm = resources["HeldRunsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (NAMESPACE, "RunsHeld")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": SERVICE}]
    assert alarm["Statistic"] == "Sum" and alarm["Threshold"] == 0
    env = _props(resources, "ReindexFunction")["Environment"]["Variables"]
    assert env["MAX_DELETE_FRACTION"] == {"Ref": "MaxDeleteFraction"}


# The totals (service dimension only) the code publishes, each shown by a test:
# ItemsFailed (tests/handlers/test_metrics.py), RunsHeld (test_refusals_and_schedules.py),
# SyncSucceeded (test_metrics.py).
SERVICE_TOTALS = {"ItemsFailed", "RunsHeld", "SyncSucceeded"}


def test_template_every_alarm_on_our_metrics_watches_a_total_the_code_publishes(
    resources: dict[str, Any],
) -> None:
    """An alarm on a CatalogSync metric with the `service` dimension only sees values
    published without a `feed` dimension (alarms cannot sum over a dimension)."""
    from catalog_sync.observability import NAMESPACE, SERVICE

    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    ours = [p for p in alarms if p.get("Namespace") == NAMESPACE]
    assert {p["MetricName"] for p in ours} == SERVICE_TOTALS
    for alarm in ours:
        assert alarm["Dimensions"] == [{"Name": "service", "Value": SERVICE}], alarm
