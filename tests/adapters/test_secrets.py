"""api_key_provider against the session's moto server (Secrets Manager and SSM)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from catalog_sync.aws.secrets import api_key_provider
from catalog_sync.errors import ConfigError
from devstack.localaws import LocalAws

KEY = "sk-live-0123456789abcdef"


@pytest.fixture
def aws(aws_clients: Callable[..., LocalAws]) -> LocalAws:
    return aws_clients(api_key=KEY)


def from_secret(aws: LocalAws, secret_id: str, max_age: int = 300) -> Callable[[], str]:
    return api_key_provider(
        secret_id=secret_id,
        parameter_name=None,
        max_age=max_age,
        secrets_client=aws.secretsmanager,
    )


def test_secrets_plain_secret_string_is_the_key(
    aws: LocalAws, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert from_secret(aws, aws.names.secret)() == KEY
    # botocore's own DEBUG wire log shows response bodies; ours and Powertools' must not
    ours = [r for r in caplog.records if not r.name.startswith(("botocore", "urllib3"))]
    assert all(KEY not in r.getMessage() for r in ours)


def test_secrets_json_secret_with_api_key_field(aws: LocalAws) -> None:
    aws.secretsmanager.put_secret_value(
        SecretId=aws.names.secret, SecretString=json.dumps({"apiKey": "k-json", "other": 1})
    )
    assert from_secret(aws, aws.names.secret)() == "k-json"


def test_secrets_value_is_cached_for_max_age(aws: LocalAws) -> None:
    cached = from_secret(aws, aws.names.secret, max_age=300)
    uncached = from_secret(aws, aws.names.secret, max_age=0)
    assert cached() == KEY
    assert uncached() == KEY

    aws.secretsmanager.put_secret_value(SecretId=aws.names.secret, SecretString="rotated")

    assert cached() == KEY
    assert uncached() == "rotated"


def test_secrets_ssm_secure_string_is_decrypted(aws: LocalAws) -> None:
    name = f"/catalog-sync/{aws.names.table}/api-key"
    aws.ssm.put_parameter(Name=name, Value=KEY, Type="SecureString")
    get = api_key_provider(secret_id=None, parameter_name=name, max_age=60, ssm_client=aws.ssm)
    assert get() == KEY


def test_secrets_missing_secret_raises_config_error_naming_it(aws: LocalAws) -> None:
    get = from_secret(aws, "catalog-sync/nope")
    with pytest.raises(ConfigError, match=r"secret 'catalog-sync/nope'.*ResourceNotFound"):
        get()


def test_secrets_missing_parameter_raises_config_error_naming_it(aws: LocalAws) -> None:
    get = api_key_provider(
        secret_id=None, parameter_name="/nope/key", max_age=60, ssm_client=aws.ssm
    )
    with pytest.raises(ConfigError, match="SSM parameter '/nope/key'"):
        get()


@pytest.mark.parametrize(
    "value",
    [
        json.dumps({"api_key": KEY}),
        json.dumps({"apiKey": 123, "secret": KEY}),
        "{" + KEY,
        json.dumps({"apiKey": "  "}),
    ],
)
def test_secrets_bad_value_raises_without_showing_it(aws: LocalAws, value: str) -> None:
    aws.secretsmanager.put_secret_value(SecretId=aws.names.secret, SecretString=value)
    with pytest.raises(ConfigError, match=aws.names.secret) as err:
        from_secret(aws, aws.names.secret)()
    assert KEY not in str(err.value)
    assert err.value.__cause__ is None


def test_secrets_nothing_configured_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="no SaaS API key configured"):
        api_key_provider(secret_id=None, parameter_name=None, max_age=60)
