"""Worker processes: a job pickled on a child's stdin, framed pickles back on its stdout.

Plain child processes (`python -c ...`), not `multiprocessing`: its `spawn` re-runs
the caller's main script in every child (a script without a main guard starts
over), `fork` copies a process that may hold other threads' locks, and AWS Lambda
has no /dev/shm for its queues and pools. This module imports only the standard
library, so a child that needs little (the CSV's pass 1 by byte ranges) starts in
milliseconds; `workers` builds the reindex's workers on it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import traceback
from collections.abc import Callable
from typing import IO, Any

from catalog_sync.errors import CatalogSyncError


class WorkerError(CatalogSyncError):
    """A worker process failed; the read is abandoned before anything is written."""


_FRAME = struct.Struct("<I")


def _send(out: IO[bytes], message: tuple[str, Any]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_FRAME.pack(len(data)) + data)
    out.flush()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    """`size` bytes from an unbuffered pipe (whatever was not read stays in the
    pipe, so the selector still sees it); EOFError if it ends first."""
    chunks: list[bytes] = []
    while size > 0:
        chunk = stream.read(size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _receive(stream: IO[bytes]) -> tuple[str, Any]:
    (size,) = _FRAME.unpack(_read_exact(stream, _FRAME.size))
    message: tuple[str, Any] = pickle.loads(_read_exact(stream, size))
    return message


_CALL = "from catalog_sync.infra.calls import call_main; call_main()"


def _start(code: str) -> subprocess.Popen[bytes]:
    """A child process running `code`, with pipes to its stdin and stdout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
        env=env,
    )


def _spawn(code: str, job: Any) -> subprocess.Popen[bytes]:
    """A child process running `code`, its job pickled on its stdin."""
    proc = _start(code)
    assert proc.stdin is not None
    proc.stdin.write(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
    proc.stdin.close()
    return proc


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a pipe to a child that died
                    pipe.close()


def call_main() -> None:
    """A worker process of `call_in_workers`: (function, arguments) on stdin, its
    result (or error) as one framed pickle on stdout."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr
    func, args = pickle.load(sys.stdin.buffer)
    try:
        result = func(*args)
    except BaseException as exc:
        lines = "".join(traceback.format_exception(exc)).strip().splitlines()
        _send(out, ("error", f"{type(exc).__name__}: {exc} [{' | '.join(lines[-3:])}]"))
        raise
    _send(out, ("done", result))


def call_in_workers(func: Callable[..., Any], jobs: list[tuple[Any, ...]]) -> list[Any]:
    """`func(*job)` for every job, each in its own worker process, all at once (the
    CSV's pass 1 by byte ranges); the results in job order. `func` must be a module
    function (pickled by reference); a worker that fails raises `WorkerError`."""
    procs = [_spawn(_CALL, (func, job)) for job in jobs]
    results: list[Any] = []
    try:
        for number, proc in enumerate(procs):
            assert proc.stdout is not None
            try:
                kind, payload = _receive(proc.stdout)
            except EOFError:
                code = proc.wait()
                raise WorkerError(
                    f"worker {number} ended (exit code {code}) before it finished"
                ) from None
            if kind != "done":
                raise WorkerError(f"worker {number} failed: {payload}")
            results.append(payload)
            proc.wait()
    finally:
        _reap(procs)
    return results
