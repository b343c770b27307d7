"""An agent loop on SomaFractalMemory, without an LLM: each user turn's prompt is built from
``POST /context`` (the user's memories and past conversation turns, within a token budget),
the reply is scripted, and both turns are stored through ``POST /conversations/{id}/messages``.

Swap :func:`scripted_reply` for a call to your model and this is the whole memory side of an
agent: nothing else needs to be stored or searched.

Run it against a real server (``make services``, then ``make run`` or
``somafractalmemory serve``; a key from ``somafractalmemory keys create --tenant me``):

    export SOMA_URL=http://127.0.0.1:9595 SOMA_API_KEY=sfm_...
    python examples/agent_loop.py --user-id alice --session-id monday \\
        "My sister Ingrid moved to Bergen." "She teaches chemistry there."
    python examples/agent_loop.py --user-id alice --session-id friday \\
        "Where does my sister live now?"

The second run's prompt holds Monday's turn about Bergen (another session, found by
``/context``), and the scripted reply quotes it. With no turns on the command line, it reads
one per line from stdin. ``--json`` prints one JSON object per turn (user, prompt, reply,
tokens, sources) instead of the prompt and reply as text.

Message ids are ``<session>-<n>-<role>``: running the same session again stores nothing twice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from somafractalmemory.client import SFMClient

SYSTEM = "You are a helpful assistant. Use what you remember about the user when it helps."


def build_prompt(context: str, user_text: str) -> str:
    """The prompt a model would get: instructions, the remembered context, the user's turn."""
    remembered = context or "(nothing yet)"
    return f"{SYSTEM}\n\n# What you remember\n{remembered}\n\n# User\n{user_text}\n"


def scripted_reply(context: str, user_text: str) -> str:
    """A stand-in for the model: questions are answered with the first remembered line (its
    text after the ``[date] speaker:`` prefix), statements acknowledged."""
    if not user_text.rstrip().endswith("?"):
        return "Noted, I will remember that."
    for line in context.splitlines():
        if line.startswith("[") and "] " in line:
            said = line.split("] ", 1)[1]
            return f"From what you told me: {said.split(': ', 1)[-1]}"
    return "I don't know that yet."


def run(
    sfm: SFMClient, user_id: str, session_id: str, turns: list[str], budget: int
) -> list[dict[str, object]]:
    """One session: for each user turn, context -> prompt -> reply, then both turns stored
    (after the context, so a turn is not its own best hit)."""
    done: list[dict[str, object]] = []
    for n, user_text in enumerate(turns):
        got = sfm.context(user_text, budget, user_id=user_id)
        context = got.context if isinstance(got.context, str) else ""
        prompt = build_prompt(context, user_text)
        reply = scripted_reply(context, user_text)
        sfm.add_messages(
            session_id,
            [
                {"id": f"{session_id}-{n}-user", "role": "user", "content": user_text},
                {"id": f"{session_id}-{n}-assistant", "role": "assistant", "content": reply},
            ],
            user_id=user_id,
            session_id=session_id,
        )
        sources = [f"{s.kind}:{s.conversation_id or ''}:{s.key}" for s in got.sources]
        done.append(
            {"user": user_text, "prompt": prompt, "reply": reply, "tokens": got.tokens,
             "budget_tokens": got.budget_tokens, "tokenizer": got.tokenizer, "sources": sources}
        )  # fmt: skip
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("turns", nargs="*", help="user turns (default: one per stdin line)")
    parser.add_argument("--user-id", required=True)
    parser.add_argument("--session-id", required=True, help="also the conversation id")
    parser.add_argument("--budget", type=int, default=500, help="context tokens (500)")
    parser.add_argument("--url", default=os.environ.get("SOMA_URL", "http://127.0.0.1:9595"))
    parser.add_argument("--api-key", default=os.environ.get("SOMA_API_KEY"))
    parser.add_argument("--json", action="store_true", help="one JSON object per turn")
    args = parser.parse_args(argv)
    turns = args.turns or [line.strip() for line in sys.stdin if line.strip()]
    with SFMClient(args.url, args.api_key) as sfm:
        done = run(sfm, args.user_id, args.session_id, turns, args.budget)
    for turn in done:
        if args.json:
            print(json.dumps(turn))
        else:
            print(f"--- prompt ({turn['tokens']} context tokens)\n{turn['prompt']}")
            print(f"--- assistant\n{turn['reply']}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
