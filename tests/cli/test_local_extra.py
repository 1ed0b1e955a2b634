"""Without the optional extra `[local]`, the local commands fail with one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Runs catalogctl in a fresh interpreter where `moto` cannot be imported, as after
# `pip install catalog-sync` without the extra.
WITHOUT_MOTO = (
    "import sys; sys.modules['moto'] = None; sys.argv = ['catalogctl', *sys.argv[1:]]; "
    "from catalogctl.cli import main; main()"
)


def catalogctl_without_moto(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_MOTO, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("local", "up"),
        ("--local", "resync", "--feed", "products"),
        ("--local", "status"),
        ("--local", "redrive"),
    ],
)
def test_local_commands_without_the_extra_say_what_to_install(args: tuple[str, ...]):
    done = catalogctl_without_moto(*args)

    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: the local stack needs: pip install 'catalog-sync[local]' (missing: moto)"
    )
    assert "Traceback" not in done.stdout + done.stderr


def test_commands_that_need_no_local_stack_work_without_the_extra():
    helped = catalogctl_without_moto("--help")
    feeds = catalogctl_without_moto("feeds")

    assert helped.returncode == 0
    assert "resync" in helped.stdout
    assert feeds.returncode == 0
    assert "products" in feeds.stdout


def test_importing_the_devstack_without_the_extra_is_an_import_error():
    code = (
        "import sys; sys.modules['moto'] = None\n"
        "try:\n    import devstack.local\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert done.stdout.strip() == (
        "LocalExtraMissing the local stack needs: pip install 'catalog-sync[local]' (missing: moto)"
    )
