"""`somafractalmemory import-chat` end to end against the session's real server: each fixture
export (tests/fixtures/chat_import/) posted through the Python client, read back in
conversation order, and imported again without storing anything twice.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from somafractalmemory.chat_import import read_chat
from somafractalmemory.stack import Stack
from testkit.server import ServerProcess

FIXTURES = Path(__file__).parent.parent / "fixtures" / "chat_import"
FILES = [
    (FIXTURES / "chatgpt_conversations.json", "chatgpt"),
    (FIXTURES / "claude_conversations.json", "claude"),
    (FIXTURES / "messages.jsonl", "jsonl"),
]


def _import(path: str, fmt: str, user: str, url: str, key: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "somafractalmemory.cli", "import-chat", path]
    command += ["--format", fmt, "--user-id", user, "--url", url, "--api-key", key]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _messages(url: str, key: str, conversation_id: str) -> list[dict[str, object]]:
    answer = httpx.get(
        f"{url}/conversations/{conversation_id}/messages",
        headers={"Authorization": f"Bearer {key}"},
        params={"limit": 1000},
    )
    assert answer.status_code == 200, answer.text
    messages: list[dict[str, object]] = answer.json()["messages"]
    return messages


@pytest.mark.parametrize(("path", "fmt"), FILES, ids=[f for _p, f in FILES])
def test_import_chat_twice(sfm_server: ServerProcess, stack: Stack, path: Path, fmt: str) -> None:
    key, _info = stack.keys.create(f"chat-{uuid.uuid4().hex[:12]}")
    parsed = read_chat(path, fmt)  # type: ignore[arg-type]
    first = _import(str(path), fmt, "u-1", sfm_server.url, key)
    assert first.returncode == 0, first.stderr
    assert f"{parsed.messages} created" in first.stdout
    for problem in parsed.problems:
        assert f"skipped {problem}" in first.stderr
    for conversation in parsed.conversations:
        if not conversation.messages:
            continue
        stored = _messages(sfm_server.url, key, conversation.id)
        # Conversation order: by time (a message without one was said when it was stored,
        # after the dated ones), then in posting order.
        told = sorted(
            conversation.messages,
            key=lambda m: (m.created_at is None, m.created_at or datetime.min.replace(tzinfo=UTC)),
        )
        assert [m["id"] for m in stored] == [m.id for m in told]
        assert [m["content"] for m in stored] == [m.content for m in told]
    again = _import(str(path), fmt, "u-1", sfm_server.url, key)
    assert again.returncode == 0, again.stderr
    assert f"{parsed.messages} unchanged" in again.stdout
    assert "created" not in again.stdout.split("imported", 1)[1]
