"""The floor: the least a client can do per row, to compare the runner's CPU against.

A minimal hand-written asyncio + httpx loop: POST each text to the live route,
read the SSE lines, base64-decode every audio frame and write the raw PCM to
one file per row. No retries, no limits, no manifest, no journal, no results,
no progress. It uses the standard library's json and base64, as a hand-written
client would; ``--fast`` swaps in orjson and pybase64 (what the runner uses),
to show how much of the runner's margin comes from them.

    python benchmarks/floor.py TEXTS_FILE OUT_DIR --base-url URL --concurrency N [--fast]

TEXTS_FILE holds one text per line; the row's file is OUT_DIR/<line number>.pcm.
Exits 1 if any row did not end with the done frame.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path

import httpx

loads, b64decode = json.loads, base64.b64decode


async def synthesize(client: httpx.AsyncClient, url: str, body: dict, path: Path) -> bool:
    """One row; read to the end of the body so the connection is reused."""
    done = False
    async with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            return False
        with open(path, "wb") as out:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = loads(line[5:])
                if payload.get("done"):
                    done = True
                else:
                    out.write(b64decode(payload["audio"]))
    return done


async def main(texts: list[str], out_dir: Path, base_url: str, concurrency: int, sample_rate: int) -> int:
    url = base_url.rstrip("/") + "/waves/v1/tts/live"
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for number, text in enumerate(texts, start=1):
        queue.put_nowait((number, text))
    failed = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed
        while not queue.empty():
            number, text = queue.get_nowait()
            body = {"text": text, "voice_id": "magnus", "sample_rate": sample_rate}
            if not await synthesize(client, url, body, out_dir / f"{number}.pcm"):
                failed += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": "Bearer floor", "Accept": "text/event-stream"}
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=60.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sample-rate", type=int, default=24000)
    parser.add_argument("--fast", action="store_true", help="orjson and pybase64 instead of json and base64")
    args = parser.parse_args()
    if args.fast:
        import orjson
        import pybase64

        loads, b64decode = orjson.loads, pybase64.b64decode
    args.out_dir.mkdir(parents=True, exist_ok=True)
    lines = args.texts.read_text(encoding="utf-8").splitlines()
    sys.exit(asyncio.run(main(lines, args.out_dir, args.base_url, args.concurrency, args.sample_rate)))
