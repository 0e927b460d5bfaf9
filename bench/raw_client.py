"""The practical limit: a plain asyncio + aiohttp loop replaying recorded dialogues.

    python bench/raw_client.py URL CHAINS.json [LIMIT]

CHAINS.json is a list of dialogues, each the list of request bodies its calls sent, in order. All
dialogues start at once; each sends its calls one after another on one kept-alive session. With no
LIMIT the server queues what it cannot serve yet; with LIMIT at most that many calls are in flight
(an asyncio.Semaphore, as a client told "the server has C slots" would do). Prints
{"wall": seconds, "calls": n} as JSON.
"""

import asyncio
import json
import sys
import time

import aiohttp


async def replay(url: str, chains: list[list[dict]], limit: int = 0) -> dict:
    sem = asyncio.Semaphore(limit) if limit else None
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        calls = 0

        async def dialogue(bodies: list[dict]) -> None:
            nonlocal calls
            for body in bodies:
                if sem:
                    await sem.acquire()
                async with session.post(f"{url}/chat/completions", json=body) as resp:
                    data = await resp.json()
                if sem:
                    sem.release()
                assert data["choices"][0]["message"]["content"] is not None
                calls += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(dialogue(c) for c in chains))
        return {"wall": time.perf_counter() - t0, "calls": calls}


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        recorded = json.load(f)
    print(json.dumps(asyncio.run(replay(sys.argv[1], recorded, int(sys.argv[3]) if len(sys.argv) > 3 else 0))))
