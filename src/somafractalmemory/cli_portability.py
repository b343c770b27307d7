"""CLI commands that move a tenant's data in and out: ``export`` and ``import`` (JSON Lines,
docs/export-import.md)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Annotated

import typer

from somafractalmemory.cli_support import found_or_exit, open_stack


def _file_error(file: str, exc: OSError, code: int) -> typer.Exit:
    """Report that ``file`` could not be read or written; the exit to raise."""
    typer.echo(f"error: {file}: {exc.strerror or exc}", err=True)
    return typer.Exit(code)


def export_command(
    file: Annotated[str, typer.Argument(help="the file to write; - for stdout")],
    tenant: Annotated[str, typer.Option(help="the tenant to export")],
    with_vectors: Annotated[
        bool,
        typer.Option("--with-vectors", help="include each memory's vector (client's or Milvus's)"),
    ] = False,
    user_id: Annotated[
        str | None, typer.Option("--user-id", help="only this end user's records")
    ] = None,
    agent_id: Annotated[str | None, typer.Option("--agent-id", help="only this agent's")] = None,
    session_id: Annotated[
        str | None, typer.Option("--session-id", help="only this session's records")
    ] = None,
) -> None:
    """Write a tenant's memories, links, spaces and items as JSON Lines
    (docs/export-import.md); with --user-id (--agent-id, --session-id) only that scope's.

    A file is written under FILE.partial and renamed when complete."""
    import os
    from pathlib import Path
    from typing import Any, BinaryIO

    from somafractalmemory.core.portability import dump_line, export_records
    from somafractalmemory.models import Scopes

    counts = {"memory": 0, "link": 0, "space": 0, "item": 0}
    partial: Path | None = None

    def write(records: Iterator[dict[str, Any]], out: BinaryIO) -> None:
        for record in records:
            if record.get("kind") in counts:
                counts[record["kind"]] += 1
            out.write(dump_line(record).encode("utf-8"))
        out.flush()

    try:
        with open_stack() as stack:
            found = found_or_exit(stack.postgres.tenant_by_name(tenant), f"tenant named {tenant!r}")
            scopes = Scopes(user_id, agent_id, session_id)
            records = export_records(
                stack.memories, found, with_vectors, items=stack.items, scopes=scopes
            )
            if file == "-":
                write(records, sys.stdout.buffer)
            else:
                target = Path(file)
                partial = target.with_name(target.name + ".partial")
                with partial.open("wb") as handle:
                    write(records, handle)
                os.replace(partial, target)
                partial = None
    except OSError as exc:
        raise _file_error(file, exc, 1) from None
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    typer.echo(
        f"exported {counts['memory']} memories and {counts['link']} links "
        f"({counts['space']} spaces, {counts['item']} items) of tenant {tenant!r}",
        err=True,
    )


def import_command(
    file: Annotated[str, typer.Argument(help="an export file; - for stdin")],
    tenant: Annotated[str, typer.Option(help="the tenant to import into (created if new)")],
    reembed: Annotated[
        bool,
        typer.Option(
            "--reembed",
            help="ignore the file's vectors and embed every memory from its text (needed "
            "when the file comes from another embedding model)",
        ),
    ] = False,
) -> None:
    """Import an export file into a tenant; importing it again changes nothing.

    Bad lines are reported by number and skipped. Exits 1 if any line failed (or a store
    failed), 2 if the file was refused (not an export, another version or model)."""
    from somafractalmemory.core.portability import Importer, tenant_for_import
    from somafractalmemory.errors import InvalidInputError, SFMError

    importer: Importer | None = None
    with open_stack() as stack:
        try:
            target = tenant_for_import(stack.memories, tenant)
            importer = Importer(
                stack.memories,
                target,
                reembed=reembed,
                on_error=lambda e: typer.echo(e, err=True),
                items=stack.items,
            )
            if file == "-":
                importer.run(sys.stdin.buffer)
            else:
                with open(file, "rb") as handle:
                    importer.run(handle)
        except InvalidInputError as exc:
            typer.echo(f"refused: {exc.detail}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            raise _file_error(file, exc, 2) from None
        except SFMError:
            if importer is not None:
                typer.echo(f"stopped after {importer.report.summary()}", err=True)
            raise  # reported by open_stack: FAILED ..., exit 1
    typer.echo(importer.report.summary())
    if importer.report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI."""
    app.command("export")(export_command)
    app.command("import")(import_command)
