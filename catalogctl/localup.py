"""`catalogctl local up`: the embedded local stack in the foreground."""

from __future__ import annotations

import gc
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import click

from catalogctl.common import UserError


def do_local_up(
    source: str | None,
    aws_port: int,
    receiver_port: int,
    echo: Callable[[str], None] = click.echo,
    *,
    stop_event: threading.Event | None = None,
    target: str = "commerce-services",
) -> None:
    from devstack.local import LocalStack

    if source and not source.startswith("s3://"):
        path = Path(source)
        if not path.exists():
            raise UserError(f"no catalog at {source}")
        source = str(path.resolve())
    stack = LocalStack(
        aws_port=aws_port,
        receiver_port=receiver_port,
        source=source,
        target=target,
        receiver_process=True,
    )
    stack.start()
    tune_gc()
    try:
        for k, v in sorted(stack.env.items()):
            echo(f"{k}={v}")
        echo("")  # the end of the environment block
        sys.stdout.flush()
        saas = "ACO emulator" if target == "aco" else "feed receiver"
        click.echo(f"local stack up (moto + {saas}); Ctrl-C stops it", err=True)
        stop = stop_event or threading.Event()
        if stop_event is None:
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        stack.stop()
        click.echo("local stack stopped", err=True)


def tune_gc() -> None:
    """This process is only the stack: moto's service models (millions of objects)
    are loaded by now and never freed. Freezing them keeps every later collection
    from walking them, and a larger first generation means fewer collections while
    request bodies are parsed (measured: export of 90k items 20 s -> 14 s)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
