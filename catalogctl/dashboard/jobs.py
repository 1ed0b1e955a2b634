"""Actions started from the dashboard run one at a time in a background thread; the
page follows a job's progress lines until it ends with a result or an error."""

from __future__ import annotations

import secrets
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click

from catalog_sync.errors import CatalogSyncError


@dataclass
class Job:
    id: str
    title: str
    status: str = "running"  # running, succeeded, failed
    lines: list[str] = field(default_factory=list)
    error: str | None = None
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str | None = None

    def echo(self, line: str) -> None:
        self.lines.append(line)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "lines": list(self.lines),
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class Busy(Exception):
    """Another action is still running."""


class Jobs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._current: Job | None = None

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    @property
    def current(self) -> Job | None:
        return self._current

    def start(self, title: str, fn: Callable[[Job], None]) -> Job:
        with self._lock:
            if self._current is not None and self._current.status == "running":
                raise Busy(f"{self._current.title!r} is still running")
            job = Job(secrets.token_hex(8), title)
            self._jobs[job.id] = job
            self._current = job
        threading.Thread(target=self._run, args=(job, fn), daemon=True).start()
        return job

    def _run(self, job: Job, fn: Callable[[Job], None]) -> None:
        try:
            fn(job)
            job.status = "succeeded"
        except (CatalogSyncError, click.ClickException) as exc:
            job.error = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
            job.status = "failed"
        except Exception as exc:  # shown on the page: the dashboard keeps serving
            job.error = f"{type(exc).__name__}: {exc}"
            job.lines.extend(traceback.format_exc().splitlines()[-6:])
            job.status = "failed"
        finally:
            job.finished_at = datetime.now(UTC).isoformat()

    def wait(self, job_id: str, timeout: float) -> Job | None:
        """For tests and the CLI: wait until a job ends."""
        import time

        deadline = time.monotonic() + timeout
        job = self._jobs.get(job_id)
        while job is not None and job.status == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        return job
