"""The chat export parsers (chat_import/) on small hand-made exports in each format
(tests/fixtures/chat_import/, no real user data), and `import-chat --dry-run`."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from somafractalmemory.chat_import import (
    ChatFormatError,
    ChatMessage,
    Parsed,
    parse_chat,
    read_chat,
)
from somafractalmemory.cli import app

FIXTURES = Path(__file__).parent.parent / "fixtures" / "chat_import"
CHATGPT = FIXTURES / "chatgpt_conversations.json"
CLAUDE = FIXTURES / "claude_conversations.json"
JSONL = FIXTURES / "messages.jsonl"


def _problems(parsed: Parsed) -> list[str]:
    return [str(p) for p in parsed.problems]


def test_chatgpt_follows_the_current_branch() -> None:
    parsed = read_chat(CHATGPT, "chatgpt")
    first, third = parsed.conversations
    assert first.id == "c0ffee00-0000-4000-8000-000000000001"
    assert first.title == "Tea for the office"
    assert first.messages == [
        ChatMessage(
            "m-user-1",
            "user",
            "Which green tea should I buy for the office?",
            created_at=datetime(2024, 4, 29, 8, 0, 1, 500000, tzinfo=UTC),
        ),
        ChatMessage(
            "m-tool-1",
            "tool",
            "Sencha, gyokuro and genmaicha are popular.",
            name="browser",
            created_at=datetime(2024, 4, 29, 8, 0, 3, tzinfo=UTC),
        ),
        ChatMessage(
            "m-assistant-2",
            "assistant",
            "Try a sencha first.\n\nIt is cheap.",
            created_at=datetime(2024, 4, 29, 8, 0, 5, tzinfo=UTC),
        ),
    ]
    # no current_node: the branch ending at the newest leaf
    assert [m.content for m in third.messages] == ["Hello", "The newest branch"]
    assert _problems(parsed) == [
        "conversations[0].mapping[n4]: unknown role 'wizard'",
        "conversations[1]: no mapping of messages",
        "conversations[3]: not an object",
    ]


def test_claude_export() -> None:
    parsed = read_chat(CLAUDE, "claude")
    lisbon, empty = parsed.conversations
    assert (lisbon.id, lisbon.title) == ("0b5e1a1e-0000-4000-8000-00000000000a", "Trip to Lisbon")
    assert [(m.id, m.role, m.content) for m in lisbon.messages] == [
        ("cm-1", "user", "I fly to Lisbon on the 3rd of June."),
        ("cm-2", "assistant", "Nice! Try the pastéis de nata.\n\nBelém has the famous ones."),
        ("cm-6", "assistant", "On the 3rd of June."),
    ]
    assert lisbon.messages[0].created_at == datetime(2024, 5, 1, 8, 0, 1, tzinfo=UTC)
    assert lisbon.messages[2].created_at == datetime(2024, 5, 1, 8, 3, tzinfo=UTC)
    assert empty.messages == []
    assert _problems(parsed) == [
        "conversations[0].chat_messages[2]: no text (an attachment alone?)",
        "conversations[0].chat_messages[3]: unknown sender 'robot'",
        "conversations[0].chat_messages[4]: created_at 'yesterday' is not an RFC 3339 time",
        "conversations[2]: no uuid or no chat_messages list",
    ]


def test_json_lines() -> None:
    parsed = read_chat(JSONL, "jsonl")
    assert [c.id for c in parsed.conversations] == ["support-1", "support-2", "7"]
    support1, support2, seven = parsed.conversations
    assert [m.body() for m in support1.messages] == [
        {
            "id": "s1-1",
            "role": "user",
            "name": "ana",
            "content": "My invoice INV-20931 is wrong",
            "created_at": "2024-06-01T10:00:00+00:00",
        },
        {
            "id": "s1-2",
            "role": "assistant",
            "content": "Sorry about that, I will check INV-20931.",
            "created_at": "2024-06-01T10:00:30+02:00",
        },
        {"id": "support-1:2", "role": "user", "content": "Thanks!"},
    ]
    # the same text twice is two messages: ids by place, not by content
    assert [m.id for m in support2.messages] == ["support-2:0", "support-2:1"]
    assert [(m.id, m.role) for m in seven.messages] == [("3", "system")]
    assert _problems(parsed) == [
        "line 7: unknown role 'bot'; one of user, assistant, system, tool",
        "line 8: no content",
        "line 9: no conversation_id",
        "line 10: not JSON: Expecting value",
        "line 11: not an object",
        "line 13: created_at 'noon' is not an RFC 3339 time",
    ]
    assert parsed.messages == 6


def test_parsing_is_stable() -> None:
    for path, fmt in ((CHATGPT, "chatgpt"), (CLAUDE, "claude"), (JSONL, "jsonl")):
        assert read_chat(path, fmt) == read_chat(path, fmt)  # type: ignore[arg-type]


def test_zip_exports(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(CHATGPT, "export-2024/conversations.json")
        out.writestr("export-2024/user.json", "{}")
    assert read_chat(archive, "chatgpt") == read_chat(CHATGPT, "chatgpt")
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as out:
        out.writestr("user.json", "{}")
    with pytest.raises(ChatFormatError, match=r"no conversations\.json"):
        read_chat(empty, "claude")


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("{", "chatgpt", "not JSON"),
        ('{"mapping": {}}', "chatgpt", "is a JSON list"),
        ('{"chat_messages": []}', "claude", "is a JSON list"),
        ("[]", "pdf", "unknown format"),
    ],
)
def test_whole_file_errors(text: str, fmt: str, message: str) -> None:
    with pytest.raises(ChatFormatError, match=message):
        parse_chat(text, fmt)  # type: ignore[arg-type]


def test_chatgpt_cycle_is_reported() -> None:
    looped = [
        {
            "id": "loop",
            "current_node": "a",
            "mapping": {
                "a": {"message": None, "parent": "b", "children": []},
                "b": {"message": None, "parent": "a", "children": ["a"]},
            },
        }
    ]
    parsed = parse_chat(json.dumps(looped), "chatgpt")
    assert parsed.conversations == []
    assert _problems(parsed) == ["conversations[0]: the mapping has a cycle through a"]


def test_cli_dry_run_reports_and_skips() -> None:
    result = CliRunner().invoke(
        app, ["import-chat", str(JSONL), "--format", "jsonl", "--user-id", "u1", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "read 3 conversations, 6 messages (6 entries skipped)" in result.stdout
    assert "skipped line 9: no conversation_id" in result.stderr


def test_cli_refuses_bad_format_and_unreadable_file(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["import-chat", str(JSONL), "--format", "pdf", "--user-id", "u"])
    assert bad.exit_code == 2
    assert "--format must be one of chatgpt, claude, jsonl" in bad.stderr
    broken = tmp_path / "conversations.json"
    broken.write_text("{not json")
    failed = runner.invoke(
        app, ["import-chat", str(broken), "--format", "claude", "--user-id", "u"]
    )
    assert failed.exit_code == 2
    assert "cannot be read as a claude export: not JSON" in failed.stderr
    nowhere = runner.invoke(
        app,
        ["import-chat", str(JSONL), "--format", "jsonl", "--user-id", "u"],
        env={"SOMA_URL": "", "SOMA_API_KEY": ""},
    )
    assert nowhere.exit_code == 2
    assert "set --url and --api-key" in nowhere.stderr
