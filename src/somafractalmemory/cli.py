"""The ``somafractalmemory`` command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from somafractalmemory import cli_chat, cli_history, cli_portability
from somafractalmemory.cli_support import (
    found_or_exit,
    load_settings,
    open_key_service,
    open_stack,
    reporting_failures,
)

app = typer.Typer(help="SomaFractalMemory: long-term memory for AI agents.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
spaces_app = typer.Typer(
    help="Embedding spaces: a tenant's own vectors, one Milvus collection each.",
    no_args_is_help=True,
)
app.add_typer(spaces_app, name="spaces")
embedder_app = typer.Typer(
    help="The embedding model: its local ONNX export (the default backend).",
    no_args_is_help=True,
)
app.add_typer(embedder_app, name="embedder")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="overrides SOMA_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="overrides SOMA_PORT")] = None,
) -> None:
    """Serve the HTTP API (use scripts/bootstrap.sh to wait for the stores first)."""
    import uvicorn

    settings = load_settings()
    uvicorn.run(
        "somafractalmemory.http_api:app",
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
    )


@app.command()
def migrate(
    wait: Annotated[
        bool, typer.Option(help="first wait for PostgreSQL (backoff, SOMA_BOOTSTRAP_TIMEOUT)")
    ] = False,
) -> None:
    """Bring the PostgreSQL schema to the newest migration (alembic upgrade head)."""
    from alembic import command

    from somafractalmemory.bootstrap import alembic_config, wait_for_postgres

    settings = load_settings()
    if wait:
        with reporting_failures(f"FAILED postgres ({settings.postgres_address}): "):
            wait_for_postgres(settings)
    try:
        command.upgrade(alembic_config(settings.sqlalchemy_url), "head")
    except Exception as exc:  # noqa: BLE001 - report any migration failure as one line
        typer.echo(f"FAILED postgres ({settings.postgres_address}): {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("postgres schema at head")


@app.command("validate-infra")
def validate_infra() -> None:
    """Check every store without changing anything (the bootstrap dry run)."""
    from somafractalmemory.bootstrap import main as bootstrap_main

    raise typer.Exit(bootstrap_main(["--dry-run"]))


@app.command("ensure-collection")
def ensure_collection() -> None:
    """Create every Milvus collection the service needs (memories, default-space items) with
    its index, if missing, stamped with this database's identity; adopt collections made
    before 0.6.0 (idempotent)."""
    from somafractalmemory.errors import SFMError, StoreUnavailableError
    from somafractalmemory.stores.ownership import read_identity

    with open_stack() as stack:
        settings = stack.settings
        try:
            owner = read_identity(stack.postgres)
            stack.milvus.ensure_collection(stack.embedder.dimension, owner)
            stack.items.ensure_collections()
        except SFMError as exc:
            # The owner is read from PostgreSQL: its failure is named as its own.
            postgres = isinstance(exc, StoreUnavailableError) and exc.store == "postgres"
            where = (
                f"postgres ({settings.postgres_address})"
                if postgres
                else f"milvus ({settings.milvus_address})"
            )
            typer.echo(f"FAILED {where}: {exc.detail}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"milvus collections for {settings.milvus_collection!r} ready")


@app.command()
def reconcile(
    repair: Annotated[
        bool, typer.Option("--repair", help="rewrite missing vectors, drop orphans")
    ] = False,
    tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None,
) -> None:
    """Compare PostgreSQL and Milvus id by id per tenant; report (and with --repair fix) drift.

    Exits 1 when drift was found and not repaired."""
    from somafractalmemory.core.reconcile import reconcile as run_reconcile

    with open_stack() as stack:
        reports = run_reconcile(stack.memories, stack.items, tenant, fix=repair)
    drift = 0
    for report in reports:
        drift += len(report.missing) + len(report.orphans)
        typer.echo(
            f"tenant {report.tenant!r}, collection {report.collection!r}: "
            f"{len(report.missing)} missing from milvus, {len(report.orphans)} orphans in milvus"
        )
    tenants = len({report.tenant_id for report in reports})
    action = "repaired" if repair and drift else "found"
    typer.echo(f"drift {action}: {drift} across {tenants} tenant(s)")
    if drift and not repair:
        raise typer.Exit(1)


@app.command("migrate-item-collections")
def migrate_item_collections() -> None:
    """Copy v1 item collections (no namespace_path, no attrs) into the v2 schema, vectors
    read back from Milvus (nothing re-embedded), then swap them in. Bootstrap does this
    itself; idempotent; run it with no server writing."""
    from somafractalmemory.core.item_collections import migrate_item_collections as migrate

    with open_stack() as stack:
        done = migrate(stack.items)
    for report in done:
        extra = f", {report.collapsed} duplicate(s) collapsed" if report.collapsed else ""
        typer.echo(f"{report.collection}: {report.outcome} ({report.copied} copied{extra})")
    migrated = sum(1 for r in done if r.outcome in ("migrated", "finished"))
    typer.echo(f"migrated {migrated} item collection(s) to v2")


@app.command("move-items")
def move_items() -> None:
    """Finish migration 0007 in Milvus: give the moved items' vectors their new record ids
    (from PostgreSQL, nothing re-embedded), once the item collections are v2 (migrated first
    when they are not). Bootstrap does this itself; idempotent."""
    from somafractalmemory.core.item_collections import migrate_item_collections as migrate
    from somafractalmemory.core.record_moves import finish_moves

    with open_stack() as stack:
        migrate(stack.items)  # the moves write v2 entities
        moved = finish_moves(stack.items)
    typer.echo(f"moved {moved} item(s) to their record ids in milvus")


@app.command("drain-outbox")
def drain_outbox(
    grace: Annotated[
        float, typer.Option(help="only entries older than this many seconds (0: all)")
    ] = 0.0,
) -> None:
    """Settle pending outbox entries now (the server also does this in the background).
    Use --grace 0 only when no server is writing."""
    settled = 0
    with open_stack() as stack:
        while drained := stack.memories.drain_outbox(grace):
            settled += drained
        while drained := stack.items.drain_outbox(grace):
            settled += drained
    typer.echo(f"settled {settled} outbox entries")


@app.command()
def mcp(
    transport: Annotated[
        str, typer.Option(help="stdio (launched by an MCP client) or http (streamable HTTP, /mcp)")
    ] = "stdio",
    host: Annotated[str, typer.Option(help="where the http transport listens")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port of the http transport")] = 9596,
    user_id: Annotated[
        str | None,
        typer.Option(
            "--user-id", help="pin every tool call to this end user (default: SOMA_USER_ID)"
        ),
    ] = None,
) -> None:
    """Serve the MCP tools over the SFM at SOMA_URL, with the key in SOMA_API_KEY.

    Tools: remember, recall, get_memory, forget, link, neighbors, history,
    remember_messages."""
    if transport not in ("stdio", "http"):
        raise typer.BadParameter("must be stdio or http", param_hint="--transport")
    try:
        from somafractalmemory.mcp_server import main as serve_mcp
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "mcp":
            raise
        typer.echo('mcp: the MCP SDK is missing: pip install "somafractalmemory[mcp]"', err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(serve_mcp("http" if transport == "http" else "stdio", host, port, user_id))


@keys_app.command("create")
def keys_create(tenant: Annotated[str, typer.Option(help="the tenant the key belongs to")]) -> None:
    """Create an API key for a tenant and print it once; only its hash is stored."""
    with open_key_service() as keys:
        key, info = keys.create(tenant)
    typer.echo(key)
    typer.echo(f"key id {info.id} for tenant {info.tenant!r}; it is shown only once", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (id, tenant, prefix, state); never the keys themselves."""
    with open_key_service() as service:
        keys = service.list()
    for k in keys:
        state = f"revoked {k.revoked_at.isoformat()}" if k.revoked_at else "active"
        typer.echo(f"{k.id}\t{k.tenant}\t{k.prefix}…\t{k.created_at.isoformat()}\t{state}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="the key id from `keys list`")]) -> None:
    """Revoke a key; it stops working at once."""
    with open_key_service() as keys:
        done = keys.revoke(key_id)
    if not done:
        typer.echo(f"no active key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"key {key_id} revoked")


@spaces_app.command("create")
def spaces_create(
    name: Annotated[str, typer.Argument(help="lowercase letters, digits, underscores")],
    tenant: Annotated[str, typer.Option(help="the tenant the space belongs to")],
    dimension: Annotated[int, typer.Option(help="length of the vectors", min=1, max=4096)],
    metric: Annotated[str, typer.Option(help="cosine, ip or l2")] = "cosine",
) -> None:
    """Register a space and create its Milvus collection (idempotent for the same shape)."""
    if metric not in ("cosine", "ip", "l2"):
        typer.echo("error: --metric must be cosine, ip or l2", err=True)
        raise typer.Exit(2)
    with open_stack() as stack:
        found = found_or_exit(stack.postgres.tenant_by_name(tenant), f"tenant {tenant!r}")
        space, created = stack.items.create_space(found, name, dimension, metric)  # type: ignore[arg-type]
    state = "created" if created else "already there"
    typer.echo(
        f"space {space.name!r} ({space.dimension}, {space.metric}) {state}: {space.collection}"
    )


@spaces_app.command("list")
def spaces_list(tenant: Annotated[str, typer.Option(help="the tenant")]) -> None:
    """The tenant's spaces (the default one first)."""
    with open_stack() as stack:
        found = found_or_exit(stack.postgres.tenant_by_name(tenant), f"tenant {tenant!r}")
        for space in stack.items.spaces(found):
            typer.echo(f"{space.name}\t{space.dimension}\t{space.metric}\t{space.collection}")


@embedder_app.command("build")
def embedder_build(
    force: Annotated[
        bool, typer.Option(help="export again even if a checked export exists")
    ] = False,
) -> None:
    """Export SOMA_EMBEDDING_MODEL to ONNX in SOMA_EMBEDDING_ONNX_DIR and check it gives the
    model's vectors (idempotent; needs no store, but torch and the model: the `export` extra)."""
    from pathlib import Path

    from somafractalmemory.core import onnx_export
    from somafractalmemory.core.embedding import resolve_model_path
    from somafractalmemory.core.onnx_model import EXPORT_EXTRA
    from somafractalmemory.errors import EmbeddingModelError
    from somafractalmemory.settings import EmbeddingSettings

    settings = EmbeddingSettings()
    try:
        model_dir = resolve_model_path(settings.embedding_model)
        if model_dir is None:
            raise EmbeddingModelError(
                "the export needs the model's package, which the server's install leaves "
                f"out: {EXPORT_EXTRA}",
                settings.embedding_model,
            )
        info = onnx_export.build(
            settings.embedding_model, Path(model_dir), settings.embedding_onnx_dir, force=force
        )
    except EmbeddingModelError as exc:
        typer.echo(f"FAILED embedding ({exc.location}): {exc.detail}", err=True)
        raise typer.Exit(1) from None
    state = "built and checked" if info.built else "already built"
    typer.echo(
        f"embedding: ONNX export of {settings.embedding_model!r} {state} at {info.path} "
        f"(largest difference from the model on the check texts: "
        f"{info.meta['check_max_abs_diff']:.1e})"
    )


@embedder_app.command("check")
def embedder_check() -> None:
    """Load the ONNX export the server would run and check it still gives the vectors the
    model gave in the build, with this environment's onnxruntime (no torch needed)."""
    from pathlib import Path

    from somafractalmemory.core import onnx_model
    from somafractalmemory.core.embedding import resolve_model_path
    from somafractalmemory.errors import EmbeddingModelError
    from somafractalmemory.settings import EmbeddingSettings

    settings = EmbeddingSettings()
    try:
        model_dir = resolve_model_path(settings.embedding_model)
        target = onnx_model.find_export(
            settings.embedding_model,
            None if model_dir is None else Path(model_dir),
            settings.embedding_onnx_dir,
        )
        onnx_model.load(
            settings.embedding_model,
            None if model_dir is None else Path(model_dir),
            settings.embedding_onnx_dir,
            settings.embedding_threads,
        )
    except EmbeddingModelError as exc:
        typer.echo(f"FAILED embedding ({exc.location}): {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"embedding: ONNX export of {settings.embedding_model!r} at {target} gives the "
        f"model's vectors (within {onnx_model.MAX_ABS_DIFF:.0e})"
    )


cli_history.register(app)
cli_chat.register(app)
cli_portability.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ModuleNotFoundError as exc:  # the light client install has no server parts
        print(
            f"this command needs the server parts ({exc.name} is missing): "
            "pip install 'somafractalmemory[server]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    sys.exit(app())
