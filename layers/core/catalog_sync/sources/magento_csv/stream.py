"""Streaming the CSV: a raw stream over an S3 body, and a line reader that knows the cut-off record."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any, BinaryIO


class _StreamRaw(io.RawIOBase):
    """A raw stream over a botocore StreamingBody; library errors become OSError."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:  # botocore / urllib3 stream errors
            raise _StreamBrokenError(f"{type(exc).__name__}: {exc}") from exc
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()
        super().close()


class _StreamBrokenError(OSError):
    pass


class _Lines:
    """Decoded lines of a byte stream for `csv.reader`, remembering what the
    parser needs to judge the file: lines with invalid UTF-8, quote count, whether
    the last line ends with a newline, and a read error that ended the stream.
    `pos`: the bytes consumed (where the next row starts); `first_line`: the lines
    before the stream's start (a byte range of the file, `ranges`)."""

    def __init__(self, stream: BinaryIO, first_line: int = 0) -> None:
        self._it = iter(stream)
        self.line_no = first_line
        self.pos = 0
        self.quotes = 0
        self.bad_lines: list[int] = []
        self.nul_lines: list[int] = []  # lines with a NUL byte (rows framed with marshal)
        self.ends_with_newline = True
        self.error: str | None = None
        self._eof = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            raw = next(self._it)
        except StopIteration:
            self._eof = True
            raise
        except (OSError, ValueError) as exc:
            self.error = str(exc)
            self._eof = True
            raise StopIteration from None
        self.line_no += 1
        self.pos += len(raw)
        if b"\0" in raw:
            self.nul_lines.append(self.line_no)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "surrogateescape")
            self.bad_lines.append(self.line_no)
        if self.line_no == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if '"' in text:
            self.quotes += text.count('"')
        self.ends_with_newline = text.endswith("\n")
        return text

    def at_eof(self) -> bool:
        if self._eof:
            return True
        # csv.reader stops at the record's end; peek whether anything follows.
        try:
            nxt = next(self._it)
        except StopIteration:
            self._eof = True
            return True
        except (OSError, ValueError) as exc:
            self.error = str(exc)
            self._eof = True
            return True
        self._it = _chain_one(nxt, self._it)
        return False


def _chain_one(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _printable(sku: str) -> str:
    return sku.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _bad_field(row: list[str], header: list[str]) -> str | None:
    for i, cell in enumerate(row):
        try:
            cell.encode("utf-8")
        except UnicodeEncodeError:
            return header[i] if i < len(header) else None
    return None


def _variation_children(cell: str) -> Iterator[str]:
    for entry in cell.split("|"):
        for pair in entry.split(","):
            k, eq, v = pair.partition("=")
            if eq and k.strip() == "sku" and v.strip():
                yield v.strip()
                break
