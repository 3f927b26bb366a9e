"""``ganbench plugins``: what is loaded, from where, registering what."""

from __future__ import annotations

import click


@click.command()
def plugins() -> None:
    """List the loaded plugins, where each comes from and what it registers."""
    from ganbench.plugins import load_registries

    registries = load_registries()
    for info in registries.plugins:
        click.echo(f"{info.name}  ({info.source})")
        if not info.registers:
            click.echo("    registers nothing")
        for kind, names in info.registers.items():
            click.echo(f"    {kind}: {', '.join(names)}")
