"""CLI command ``import-chat``: a ChatGPT, Claude.ai or JSON Lines export into conversations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from somafractalmemory.chat_import import FORMATS, ChatFormatError, read_chat
from somafractalmemory.chat_import.upload import DEFAULT_BATCH, upload


def import_chat(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="the export file"),
    ],
    chat_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="chatgpt (conversations.json or the export's .zip), claude (likewise) or "
            "jsonl (one message an object)",
        ),
    ],
    user_id: Annotated[str, typer.Option(help="the end user the conversations belong to")],
    agent_id: Annotated[str | None, typer.Option(help="the agent of the conversations")] = None,
    url: Annotated[str, typer.Option(envvar="SOMA_URL", help="the SFM server")] = "",
    api_key: Annotated[str, typer.Option(envvar="SOMA_API_KEY", help="an API key")] = "",
    batch_size: Annotated[
        int, typer.Option(min=1, max=1000, help="messages per request")
    ] = DEFAULT_BATCH,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only read the file and report what it holds")
    ] = False,
) -> None:
    """Import a chat export: each conversation's messages are posted to
    POST /conversations/{id}/messages (idempotent by message id: importing again stores
    nothing twice). Entries that cannot be read are reported by position and skipped."""
    if chat_format not in FORMATS:
        typer.echo(f"--format must be one of {', '.join(FORMATS)}, got {chat_format!r}", err=True)
        raise typer.Exit(2)
    try:
        parsed = read_chat(file, chat_format)
    except (ChatFormatError, UnicodeDecodeError, OSError) as exc:
        typer.echo(f"{file}: cannot be read as a {chat_format} export: {exc}", err=True)
        raise typer.Exit(2) from None
    for problem in parsed.problems:
        typer.echo(f"skipped {problem}", err=True)
    typer.echo(
        f"read {len(parsed.conversations)} conversations, {parsed.messages} messages "
        f"({len(parsed.problems)} entries skipped)"
    )
    if dry_run:
        return
    if not url or not api_key:
        typer.echo("set --url and --api-key (or SOMA_URL and SOMA_API_KEY)", err=True)
        raise typer.Exit(2)
    from somafractalmemory.client import SFMClient, SFMClientError

    try:
        with SFMClient(url, api_key) as client:
            done = upload(client, parsed, user_id, agent_id=agent_id, batch_size=batch_size)
    except SFMClientError as exc:
        typer.echo(f"import stopped: {exc} (importing again resumes: it is idempotent)", err=True)
        raise typer.Exit(1) from None
    counts = ", ".join(f"{n} {status}" for status, n in sorted(done.statuses.items()))
    typer.echo(f"imported {done.conversations} conversations: {counts or 'no messages'}")


def register(app: typer.Typer) -> None:
    """Add this command to the main CLI."""
    app.command("import-chat")(import_chat)
