"""examples/agent_loop.py as a subprocess against the session's real server: a turn of one
session is in a later session's prompt (within the budget) and answers its question; another
user's turns never are; running a session again stores nothing twice."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from somafractalmemory.stack import Stack
from testkit.server import ServerProcess

AGENT = Path(__file__).parents[2] / "examples" / "agent_loop.py"


def _agent(server: ServerProcess, key: str, user: str, session: str, *turns: str) -> list[Any]:
    command = [sys.executable, str(AGENT), "--json", "--budget", "300"]
    command += ["--url", server.url, "--api-key", key, "--user-id", user, "--session-id", session]
    done = subprocess.run(
        [*command, *turns], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_agent_loop_remembers_across_sessions(sfm_server: ServerProcess, stack: Stack) -> None:
    key, _info = stack.keys.create(f"agent-{uuid.uuid4().hex[:12]}")
    monday = ("My sister Ingrid moved to Bergen last spring.", "She teaches chemistry.")
    first = _agent(sfm_server, key, "alice", "monday", *monday)
    assert [t["reply"] for t in first] == ["Noted, I will remember that."] * 2
    bob = _agent(sfm_server, key, "bob", "bob-1", "My sister Astrid moved to Tromso.")
    assert "Ingrid" not in bob[0]["prompt"]
    [friday] = _agent(sfm_server, key, "alice", "friday", "Where does my sister live now?")
    assert "Ingrid moved to Bergen" in friday["prompt"]
    assert "Astrid" not in friday["prompt"]
    assert "Bergen" in friday["reply"]
    assert friday["tokens"] <= friday["budget_tokens"] == 300
    assert "message:monday:monday-0-user" in friday["sources"]
    # The same session again: the turns are stored once, each user turn and its reply.
    again = _agent(sfm_server, key, "alice", "monday", *monday)
    assert len(again) == 2
    listed = httpx.get(
        f"{sfm_server.url}/conversations/monday/messages",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert listed.status_code == 200, listed.text
    stored = listed.json()["messages"]
    assert [m["id"] for m in stored] == [
        "monday-0-user",
        "monday-0-assistant",
        "monday-1-user",
        "monday-1-assistant",
    ]
    assert {(m["user_id"], m["session_id"]) for m in stored} == {("alice", "monday")}
