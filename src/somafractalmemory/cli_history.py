"""CLI commands about the history: erase a whole tenant's records."""

from __future__ import annotations

from typing import Annotated

import typer

from somafractalmemory.cli_support import found_or_exit, open_stack


def purge_tenant(
    tenant: Annotated[str, typer.Option(help="the tenant whose records are erased")],
    yes: Annotated[bool, typer.Option("--yes", help="confirm: this cannot be undone")] = False,
) -> None:
    """Erase every memory and item of a tenant from PostgreSQL, Milvus, the cache and the
    history (exports and the change feed no longer hold them). The tenant and its keys stay.
    Safe to run again after a failure: it finishes the rest."""
    from somafractalmemory.core.purge import purge_tenant as run_purge

    if not yes:
        typer.echo("refusing without --yes: a purge cannot be undone", err=True)
        raise typer.Exit(2)
    with open_stack() as stack:
        found = found_or_exit(stack.postgres.tenant_by_name(tenant), f"tenant {tenant!r}")
        report = run_purge(stack.memories, stack.items, found)
    typer.echo(
        f"purged tenant {tenant!r}: {report.memories} memories, {report.items} items, "
        f"{report.versions} versions of history"
    )


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI."""
    app.command("purge-tenant")(purge_tenant)
