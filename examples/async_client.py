"""The async client: store a small batch, link two memories, walk the links, page through all.

export SOMA_URL=http://127.0.0.1:9595 SOMA_API_KEY=sfm_...
python examples/async_client.py
"""

import asyncio
import os

from somafractalmemory.client import AsyncSFMClient, NotFound


async def main() -> None:
    async with AsyncSFMClient(os.environ["SOMA_URL"], os.environ["SOMA_API_KEY"]) as sfm:
        await sfm.store_batch(
            [
                {"coord": "1,1", "payload": {"text": "Booked a flight to Lisbon for May 3rd"}},
                {"coord": "1,2", "payload": {"text": "Ana lives in Lisbon"}, "importance": 0.9},
            ]
        )
        await sfm.link("1,1", "1,2", "visiting", strength=0.8)
        for neighbor in (await sfm.neighbors("1,1")).neighbors:
            print("linked:", neighbor.coord, neighbor.link_type)
        async for memory in sfm.iter_memories(page_size=50):
            print(memory.coord, memory.payload["text"])
        try:
            await sfm.get("9,9")
        except NotFound as exc:
            print("as expected:", exc)


asyncio.run(main())
