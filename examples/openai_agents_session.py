"""An OpenAI Agents SDK session kept in SFM, used directly (no agent run, no LLM):
add turns and tool items, read them back, pop the last, recall a turn by meaning.

pip install "somafractalmemory[openai-agents]"
export SOMA_URL=http://127.0.0.1:9595 SOMA_API_KEY=sfm_...
python examples/openai_agents_session.py

With an agent: ``await Runner.run(agent, "Hello", session=session)``.
"""

import asyncio
import os
import uuid

from agents import TResponseInputItem

from somafractalmemory.client import AsyncSFMClient
from somafractalmemory.openai_agents import SFMSession


async def main() -> None:
    url, key = os.environ["SOMA_URL"], os.environ["SOMA_API_KEY"]
    session_id = f"example-{uuid.uuid4().hex[:8]}"
    session = SFMSession(session_id, user_id="ann", base_url=url, api_key=key)
    items: list[TResponseInputItem] = [
        {"role": "user", "content": "Book me a table for two on Friday; I am vegetarian."},
        {
            "type": "function_call",
            "call_id": "call-1",
            "name": "book_table",
            "arguments": '{"people": 2, "day": "Friday"}',
        },
        {"type": "function_call_output", "call_id": "call-1", "output": "booked: 19:30"},
        {"role": "assistant", "content": "Booked for 19:30 on Friday."},
        {"role": "user", "content": "Thanks!"},
    ]
    await session.add_items(items)
    stored = await session.get_items()
    assert stored == items, "items read back differ from the ones added"
    print(f"{len(stored)} items in session {session_id}; the last two:")
    for item in await session.get_items(limit=2):
        print("  ", item)
    print("popped:", await session.pop_item())

    # The plain turns are conversation messages like any other: recalled by meaning.
    async with AsyncSFMClient(url, key) as sfm:
        found = await sfm.search_messages("what does she eat?", conversation_id=session_id)
        print("recalled:", found.results[0].content)

    await session.clear_session()
    print("after clear:", await session.get_items())
    await session.aclose()


if __name__ == "__main__":
    asyncio.run(main())
