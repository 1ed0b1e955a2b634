"""The SaaS API key, from Secrets Manager or SSM Parameter Store, cached.

The secret (or SecureString parameter) holds either the key itself, or a JSON
object `{"apiKey": "..."}` (the shape the console's "key/value" secrets take).
The value is never logged and never part of an error message; errors name the
secret or parameter only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

from catalog_sync.errors import ConfigError

JSON_FIELD = "apiKey"


def _extract(raw: Any, what: str) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            raise ConfigError(f"{what} is binary, not text") from None
    if not isinstance(raw, str):
        raise ConfigError(f"{what} is not a string")
    value = raw.strip()
    if value.startswith("{"):
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ConfigError(f"{what} looks like JSON but does not parse") from None
        key = doc.get(JSON_FIELD) if isinstance(doc, dict) else None
        if not isinstance(key, str):
            raise ConfigError(f"{what} is a JSON object without a string {JSON_FIELD!r} field")
        value = key.strip()
    if not value:
        raise ConfigError(f"{what} is empty")
    return value


def api_key_provider(
    *,
    secret_id: str | None,
    parameter_name: str | None,
    max_age: int,
    secrets_client: Any = None,
    ssm_client: Any = None,
    name: str = "SaaS API key",
) -> Callable[[], str]:
    """A function returning the API key (or another secret, called `name` in
    errors), fetched at most once per `max_age`
    seconds (Powertools Parameters' cache). The secret wins when both are given.
    Nothing is fetched until the function is called; a missing secret or a denied
    read raises `ConfigError` naming the secret."""
    if secret_id:
        secrets = SecretsProvider(boto3_client=secrets_client)
        what = f"secret {secret_id!r}"

        def fetch() -> Any:
            return secrets.get(secret_id, max_age=max_age)

    elif parameter_name:
        ssm = SSMProvider(boto3_client=ssm_client)
        what = f"SSM parameter {parameter_name!r}"

        def fetch() -> Any:
            return ssm.get(parameter_name, max_age=max_age, decrypt=True)

    else:
        raise ConfigError(
            f"no {name} configured: set a Secrets Manager secret id or an SSM parameter name"
        )

    def api_key() -> str:
        try:
            raw = fetch()
        except Exception as exc:  # Powertools wraps every failure in GetParameterError
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            raise ConfigError(
                f"cannot read the {name} from {what}: {type(cause).__name__}: {cause}"
            ) from None
        return _extract(raw, what)

    return api_key


# -- JSON secrets (the ACO target's IMS credentials) ------------------------------------------


def json_secret_provider(
    *, secret_id: str, fields: tuple[str, ...], max_age: int, secrets_client: Any = None, name: str
) -> Callable[[], dict[str, str]]:
    """A function returning the string `fields` of a JSON secret (Powertools' cache,
    `max_age` seconds). Errors name the secret and the field, never a value."""
    secrets = SecretsProvider(boto3_client=secrets_client)
    what = f"secret {secret_id!r}"

    def read() -> dict[str, str]:
        try:
            raw = secrets.get(secret_id, max_age=max_age)
        except Exception as exc:  # Powertools wraps every failure in GetParameterError
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            raise ConfigError(
                f"cannot read the {name} from {what}: {type(cause).__name__}: {cause}"
            ) from None
        if isinstance(raw, bytes):
            raw = raw.decode(errors="replace")
        try:
            doc = orjson.loads(raw) if isinstance(raw, str) else None
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            raise ConfigError(f"the {name} in {what} must be a JSON object with {list(fields)}")
        out = {}
        for field in fields:
            value = doc.get(field)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"the {name} in {what} has no non-empty string {field!r}")
            out[field] = value.strip()
        return out

    return read
