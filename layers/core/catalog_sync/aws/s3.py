"""`BlobStore` over an S3 bucket (an injected boto3 S3 client)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from catalog_sync.errors import ConfigError, NotFoundError

# Files above 16 MiB go up in parts of 16 MiB, a few at a time (the transfer manager).
DEFAULT_TRANSFER = TransferConfig(
    multipart_threshold=16 * 1024 * 1024,
    multipart_chunksize=16 * 1024 * 1024,
    max_concurrency=4,
)

_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
DELETE_BATCH = 1000


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3BlobStore:
    """Objects under `s3://{bucket}/{prefix}`. `open` streams (the botocore
    `StreamingBody`, a file-like object); `put_file` uses the transfer manager, so
    large files go up in parts. A missing key raises `NotFoundError`; a missing
    bucket raises `ConfigError` naming it."""

    def __init__(
        self,
        s3_client: Any,
        bucket: str,
        prefix: str = "",
        *,
        transfer_config: TransferConfig | None = None,
    ) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.transfer_config = transfer_config or DEFAULT_TRANSFER

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _translate(self, exc: ClientError, key: str) -> Exception:
        code = _code(exc)
        if code in _MISSING_KEY:
            return NotFoundError(f"{self._where(key)} not found")
        if code == "NoSuchBucket":
            return ConfigError(f"S3 bucket {self.bucket!r} does not exist")
        return exc

    def put_file(self, key: str, path: Path) -> None:
        try:
            self.s3.upload_file(str(path), self.bucket, self._key(key), Config=self.transfer_config)
        except S3UploadFailedError as exc:
            if "NoSuchBucket" in str(exc):
                raise ConfigError(f"S3 bucket {self.bucket!r} does not exist") from exc
            raise
        except ClientError as exc:
            raise self._translate(exc, key) from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except ClientError as exc:
            raise self._translate(exc, key) from exc

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as body:
            return body.read()

    def open(self, key: str) -> BinaryIO:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            raise self._translate(exc, key) from exc
        return cast(BinaryIO, response["Body"])

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING_KEY:
                return False
            raise self._translate(exc, key) from exc
        return True

    def list_keys(self, prefix: str) -> Iterator[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix)
        )
        try:
            for page in pages:
                for obj in page.get("Contents", ()):
                    yield obj["Key"][len(self.prefix) :]
        except ClientError as exc:
            raise self._translate(exc, prefix) from exc

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Up to 1,000 keys a request (S3's limit); a key that failed is an error."""
        for i in range(0, len(keys), DELETE_BATCH):
            chunk = keys[i : i + DELETE_BATCH]
            try:
                response = self.s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._key(k)} for k in chunk], "Quiet": True},
                )
            except ClientError as exc:
                raise self._translate(exc, chunk[0]) from exc
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise OSError(
                    f"could not delete {len(errors)} object(s) from s3://{self.bucket}, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".strip()
                )
