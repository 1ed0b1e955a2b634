"""Streaming the CSV: a raw stream over an S3 body, and a line reader that knows the cut-off record."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
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


FAST_BLOCK = 1 << 20  # bytes `_Lines.fast` decodes at once
# ... unless this says other (the tests: small blocks, in the range workers too)
BLOCK_ENV = "CATALOG_SYNC_CSV_BLOCK_BYTES"


def _block_bytes() -> int:
    return int(os.environ.get(BLOCK_ENV) or FAST_BLOCK)


class _Lines:
    """Decoded lines of a byte stream for `csv.reader`, remembering what the
    parser needs to judge the file: lines with invalid UTF-8, quote count, whether
    the last line ends with a newline, and a read error that ended the stream.
    `pos`: the bytes consumed (where the next row starts); `first_line`: the lines
    before the stream's start (a byte range of the file, `ranges`).

    Iterated, it takes a line at a time; `fast()` gives the same lines a block at a
    time, which `csv.reader` takes at C speed (see there for what stays exact)."""

    def __init__(self, stream: BinaryIO, first_line: int = 0) -> None:
        self._stream = stream
        self._it: Iterator[bytes] = iter(stream)
        self.line_no = first_line
        self.pos = 0
        self.quotes = 0
        self.bad_lines: list[int] = []
        self.nul_lines: list[int] = []  # lines with a NUL byte (rows framed with marshal)
        self.ends_with_newline = True
        self.error: str | None = None
        self._eof = False
        self._fast = False  # `fast` is handing out blocks: more lines follow them

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
        return self._take(raw)

    def _take(self, raw: bytes) -> str:
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

    def fast(self, until: int | None = None) -> Iterator[str]:
        """The lines iterating gives, from where the stream is, decoded a block of whole
        lines at a time. The account (`pos`, `line_no`, `quotes`) is then kept per block,
        counted when the block is handed out: while its lines are parsed it says where
        the block ends. Line by line, exact, go: every byte from `until` on (where the
        next byte range starts: `pos` tells the rows there apart, so no block reaches
        it), the stream's last block (its end: `ends_with_newline`, `at_eof`), a block
        with a NUL or invalid UTF-8 (those lines are listed) and what follows a read
        error."""
        return itertools.chain.from_iterable(self._pieces(until))

    def _pieces(self, until: int | None) -> Iterator[Iterator[str]]:
        size = _block_bytes()
        held: list[bytes] = []  # whole-line blocks read and not handed out (at most 2)
        taken = self.pos  # bytes taken from the stream
        failed: Exception | None = None
        self._fast = True
        read1 = getattr(self._stream, "read1", self._stream.read)
        while True:
            chunks: list[bytes] = []  # what a read error leaves is kept, as a line's reads
            got = 0
            try:
                while got < size and (chunk := read1(size - got)):
                    chunks.append(chunk)
                    got += len(chunk)
                if chunks and not chunks[-1].endswith(b"\n"):
                    chunks.append(self._stream.readline())
            except (OSError, ValueError) as exc:
                failed = exc
            block = b"".join(chunks)
            if failed is not None:  # the lines before it; a line cut short is lost
                block = block[: block.rfind(b"\n") + 1]
                if block:
                    held.append(block)
                break
            if not block:
                break
            held.append(block)
            taken += len(block)
            if until is not None and taken >= until:
                break  # this block reaches the exact part: line by line from it
            if len(held) == 2:  # the first is not the stream's last: hand it out
                yield self._block(held.pop(0))
        self._fast = False
        rest: list[Iterator[bytes]] = [iter(io.BytesIO(b)) for b in held]
        self._it = itertools.chain(*rest, _raising(failed) if failed else self._it)
        yield self

    def _block(self, block: bytes) -> Iterator[str]:
        """A block handed out: decoded at once, or line by line where it must be."""
        if b"\0" in block:
            return (self._take(raw) for raw in io.BytesIO(block))
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            return (self._take(raw) for raw in io.BytesIO(block))
        if self.line_no == 0 and text.startswith("\ufeff"):
            text = text[1:]
        self.line_no += newlines(block)
        self.pos += len(block)
        self.quotes += text.count('"')
        self.ends_with_newline = True
        return io.StringIO(text, newline="\n")

    def at_eof(self) -> bool:
        if self._fast:
            return False  # `fast` holds the stream's last block back: something follows
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


def newlines(block: bytes) -> int:
    """How many newlines `block` has. `bytes.replace` finds a byte with memchr, which
    skips the bytes between newlines several times faster than `bytes.count` walks
    them (at a CSV row's line length: 2.6x at 500 bytes, 5x at 1 kB; a little slower
    only at lines under about 30 bytes)."""
    return len(block) - len(block.replace(b"\n", b""))


def _raising(exc: Exception) -> Iterator[bytes]:
    """What the stream does next: raise the error a block read met."""
    raise exc
    yield b""  # pragma: no cover - a generator


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
