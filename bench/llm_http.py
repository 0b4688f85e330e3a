"""CPU per LLM call of the openai client, with its default httpx pool and with the aiohttp
transport the openai package ships (what `bot.llm.client.make_openai` uses).

    python -m bench.llm_http [--calls 1000] [--concurrency 20,200]

The scripted LLM answers at once, in its own process, so the CPU time measured (user + system of
this process) is the client's alone: building the request, the HTTP exchange, parsing the reply.
The requests have the size and the Structured Outputs schema of a real execution call. Prints a
table and a last line `LLMHTTP {json}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bot.llm.schemas import ExecutionReply, response_format  # noqa: E402
from tests.fakes.cluster import free_port  # noqa: E402

TRANSPORTS = ("httpx", "aiohttp")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(transport: str, base_url: str, calls: int, concurrency: int) -> dict[str, float]:
    extra: dict[str, Any] = {"http_client": openai.DefaultAioHttpClient()} if transport == "aiohttp" else {}
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=base_url, max_retries=0, **extra)
    messages = [
        {"role": "system", "content": "You are Entrepreneur-GPT. " * 120},
        {"role": "system", "content": "This reminds you of these events from your past: ... " * 20},
        {"role": "user", "content": "Determine which next command to use. " * 40},
    ]
    fmt = response_format(ExecutionReply, "execution_reply", True)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,  # type: ignore[arg-type]
                response_format=fmt,  # type: ignore[arg-type]
            )

    try:
        await asyncio.gather(*(one() for _ in range(concurrency)))  # warm the pool
        cpu0, wall0 = cpu_s(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(calls)))
        cpu, wall = cpu_s() - cpu0, time.perf_counter() - wall0
    finally:
        await client.close()
    return {"cpu_ms_per_call": round(1000 * cpu / calls, 3), "calls_per_s": round(calls / wall, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--concurrency", default="20,200")
    args = p.parse_args(argv)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.load", "--llm-server", str(port), "--delay", "0", "--cycles", "99"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"the LLM server did not start: {line!r}")
        base_url = line.split()[1]
        results: dict[str, dict[str, dict[str, float]]] = {}
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            for transport in TRANSPORTS:
                got = asyncio.run(measure(transport, base_url, args.calls, concurrency))
                results.setdefault(str(concurrency), {})[transport] = got
    finally:
        server.terminate()
        server.wait(10)
    print(f"{'concurrency':>11}  {'transport':>9}  {'CPU ms/call':>11}  {'calls/s':>8}")
    for concurrency, by in results.items():
        for transport, r in by.items():
            print(f"{concurrency:>11}  {transport:>9}  {r['cpu_ms_per_call']:>11}  {r['calls_per_s']:>8}")
    print("LLMHTTP " + json.dumps({"calls": args.calls, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
