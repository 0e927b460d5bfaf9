"""The practical limit: a plain asyncio + aiohttp loop replaying recorded dialogues.

    python bench/raw_client.py URL CHAINS.json

CHAINS.json is a list of dialogues, each the list of request bodies its calls sent, in order. All
dialogues start at once; each sends its calls one after another on one kept-alive session (the
server queues what it cannot serve yet). Prints {"wall": seconds, "calls": n} as JSON.
"""

import asyncio
import json
import sys
import time

import aiohttp


async def replay(url: str, chains: list[list[dict]]) -> dict:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        calls = 0

        async def dialogue(bodies: list[dict]) -> None:
            nonlocal calls
            for body in bodies:
                async with session.post(f"{url}/chat/completions", json=body) as resp:
                    data = await resp.json()
                assert data["choices"][0]["message"]["content"] is not None
                calls += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(dialogue(c) for c in chains))
        return {"wall": time.perf_counter() - t0, "calls": calls}


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        recorded = json.load(f)
    print(json.dumps(asyncio.run(replay(sys.argv[1], recorded))))
