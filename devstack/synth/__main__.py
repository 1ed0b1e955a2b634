from devstack.synth.cli import cli

cli()
