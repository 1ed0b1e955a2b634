"""`python -m devstack.synth ...`: generate and edit synthetic exports."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict

import click

from catalog_sync.errors import SourceError
from devstack.synth.edits import EditResult, edit, edit_fraction
from devstack.synth.writer import SynthStats, generate


def _run(result: SynthStats | EditResult) -> None:
    click.echo(json.dumps(asdict(result), indent=2))


@click.group()
def cli() -> None:
    """Synthetic Magento product export CSVs."""


@cli.command("generate")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--products", type=click.IntRange(min=0), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--store-view", "store_views", multiple=True, default=("fr", "de"), show_default=True)
@click.option("--website", "websites", multiple=True, default=("base",), show_default=True)
def generate_command(
    out: str, products: int, seed: int, store_views: tuple[str, ...], websites: tuple[str, ...]
) -> None:
    """Write a synthetic export with exactly PRODUCTS SKUs to OUT."""
    _run(generate(out, products, seed=seed, store_views=store_views, websites=websites))


def _edit_cli(fn: Callable[..., EditResult], *args: object, **kwargs: object) -> None:
    try:
        result = fn(*args, **kwargs)
    except (SourceError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    _run(result)


@cli.command("edit")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--change-prices", type=click.IntRange(min=0), default=0)
@click.option("--remove", type=click.IntRange(min=0), default=0)
@click.option("--add", type=click.IntRange(min=0), default=0)
@click.option("--seed", type=int, default=0)
@click.option("--any-product", is_flag=True, help="Pick among all products, not only standalone.")
def edit_command(
    src: str, dst: str, change_prices: int, remove: int, add: int, seed: int, any_product: bool
) -> None:
    """Copy SRC to DST changing prices, removing and adding products."""
    _edit_cli(
        edit,
        src,
        dst,
        change_prices=change_prices,
        remove=remove,
        add=add,
        seed=seed,
        only_standalone=not any_product,
    )


@cli.command("edit-fraction")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--fraction", type=click.FloatRange(0, 1), required=True)
@click.option("--seed", type=int, default=0)
def edit_fraction_command(src: str, dst: str, fraction: float, seed: int) -> None:
    """Copy SRC to DST changing the price of FRACTION of all products."""
    _edit_cli(edit_fraction, src, dst, fraction, seed)


if __name__ == "__main__":
    cli()
