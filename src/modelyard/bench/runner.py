"""The sweep: for each concurrency, send R requests with at most C in flight, then summarise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from modelyard.bench.results import LevelResult, RequestResult, summarise_level
from modelyard.bench.targets import Target
from modelyard.bench.workload import make_prompt

LevelDone = Callable[[LevelResult], None]


@dataclass(frozen=True)
class BenchConfig:
    concurrency: tuple[int, ...]
    prompt_tokens: int
    max_tokens: int
    requests: int
    warmup: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "concurrency": list(self.concurrency),
            "prompt_tokens": self.prompt_tokens,
            "max_tokens": self.max_tokens,
            "requests": self.requests,
            "warmup": self.warmup,
        }


async def run_level(
    target: Target, prompts: Sequence[str], concurrency: int, max_tokens: int
) -> LevelResult:
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> RequestResult:
        async with gate:
            return await target.request(prompt, max_tokens)

    started = time.perf_counter()
    results = await asyncio.gather(*(one(p) for p in prompts))
    return summarise_level(concurrency, results, time.perf_counter() - started)


async def run_sweep(
    target: Target,
    config: BenchConfig,
    count_tokens: Callable[[str], int] | None = None,
    on_level: LevelDone | None = None,
) -> list[LevelResult]:
    for i in range(config.warmup):
        await target.request(make_prompt(config.prompt_tokens, count_tokens, salt=-1 - i), 4)
    levels = []
    for number, concurrency in enumerate(config.concurrency):
        # Distinct prompts per level: a response cache must not flatter later levels.
        first = number * config.requests
        prompts = [
            make_prompt(config.prompt_tokens, count_tokens, salt=first + i)
            for i in range(config.requests)
        ]
        level = await run_level(target, prompts, concurrency, config.max_tokens)
        levels.append(level)
        if on_level:
            on_level(level)
    return levels
