"""Prefix reuse: a request sharing a long prefix with an earlier one lands on the slot that
holds it, and the engine reports the reused tokens (its own count, never a time)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from modelyard.catalog.records import ModelVersion
from modelyard.config import Settings
from modelyard.engines.base import PromptPart, SamplingParams
from modelyard.engines.binary import find_llama_server
from modelyard.engines.http_engine import HTTPEngine, sampling_body
from modelyard.engines.worker_options import worker_options
from modelyard.engines.worker_process import worker_args
from modelyard.engines.workers import WorkerPool
from tests.engines.test_workers import version_for

GREEDY = SamplingParams(max_tokens=2, temperature=0.0)
RULE = "Answer politely, precisely and briefly, citing the handbook section. "


def chat(system: str, question: str) -> tuple[PromptPart, ...]:
    """A chat prompt as the gateway builds it: template text, then the user's text."""
    return (
        PromptPart("<start_of_turn>user\n", True),
        PromptPart(f"{system}\n\n{question}", False),
        PromptPart("<end_of_turn>\n<start_of_turn>model\n", True),
    )


def make_pool(tmp_path: Path, model: Path, version: ModelVersion, **extra: Any) -> WorkerPool:
    settings = Settings(
        home=tmp_path / "home",
        worker_slots=2,
        worker_ctx_per_slot=2048,
        worker_threads=1,
        worker_prompt_cache_mb=64,
        **extra,
    )
    return WorkerPool(
        find_llama_server(settings),
        worker_options(settings, gpu=False),
        model_path=lambda v: model,
        budget_bytes=8 << 30,
        run_dir=settings.run_dir,
        queue_size=2,
    )


async def complete(engine: HTTPEngine, prompt: tuple[PromptPart, ...] | str) -> dict[str, Any]:
    """One /completion with the body the gateway sends; the engine's whole answer."""
    body = sampling_body(GREEDY) | {"prompt": await engine.engine_prompt(prompt)}
    endpoint = engine.endpoint
    transport = httpx.AsyncHTTPTransport(uds=endpoint.uds)
    headers = {"Authorization": f"Bearer {endpoint.api_key}"}
    async with httpx.AsyncClient(transport=transport, headers=headers, timeout=120) as client:
        response = await client.post(f"{endpoint.base_url}/completion", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def answers(
    pool: WorkerPool, version: ModelVersion, system: str, prompts: list[Any]
) -> tuple[int, list[dict[str, Any]]]:
    """The system prompt's token count (BOS and turn header included), and the answers."""
    try:
        async with pool.lease(version) as engine:
            shared = await engine.count_tokens(chat(system, "")[:2])
            return shared, [await complete(engine, prompt) for prompt in prompts]
    finally:
        await pool.close()


def test_worker_args_set_the_slot_choice_explicitly() -> None:
    settings = Settings(worker_slot_prompt_similarity=0.25, worker_swa_full=True)
    args = worker_args(
        Path("/bin/llama-server"),
        worker_options(settings, gpu=False),
        model="m.gguf",
        socket=Path("/tmp/s"),
        ctx_per_slot=512,
    )
    assert args[args.index("--slot-prompt-similarity") + 1] == "0.25"
    assert "--swa-full" in args
    default = worker_args(
        Path("/bin/llama-server"),
        worker_options(Settings(), gpu=False),
        model="m.gguf",
        socket=Path("/tmp/s"),
        ctx_per_slot=512,
    )
    assert default[default.index("--slot-prompt-similarity") + 1] == "0.5"
    assert "--swa-full" not in default


def test_a_shared_long_prefix_is_reused_on_the_slot_that_holds_it(
    tmp_path: Path, default_gguf: Path
) -> None:
    """A ~700-token system prompt (longer than the default model's 512-token window): the
    third request lands on the first one's slot, and the engine reuses at least the system
    prompt's tokens. The short unrelated request in between shares only BOS with it (more
    than llama.cpp's default 0.1 of its prompt): it must not take that slot over."""
    version = version_for(default_gguf, "prefix")
    system = "You are the clinic's assistant. " + RULE * 50
    shared, (first, other, third) = asyncio.run(
        answers(
            make_pool(tmp_path, default_gguf, version),
            version,
            system,
            [
                chat(system, "Which forms does a new patient fill in?"),
                "A short unrelated note about whales.",
                chat(system, "When does the pharmacy open on Sundays?"),
            ],
        )
    )
    assert shared > 600
    assert first["timings"]["cache_n"] == 0
    assert other["id_slot"] != first["id_slot"]
    assert third["id_slot"] == first["id_slot"]
    # The "\n\n" after the system prompt may tokenize with what follows: allow one token.
    assert third["timings"]["cache_n"] >= shared - 1
    assert third["tokens_cached"] > third["timings"]["cache_n"]  # prompt and answer held


def test_swa_full_reuses_a_prefix_shorter_than_the_window(
    tmp_path: Path, default_gguf: Path
) -> None:
    version = version_for(default_gguf, "swafull")
    system = "You are the clinic's assistant. " + RULE * 12  # ~200 tokens, inside the window
    shared, (first, second) = asyncio.run(
        answers(
            make_pool(tmp_path, default_gguf, version, worker_swa_full=True),
            version,
            system,
            [chat(system, "Which forms do I need?"), chat(system, "Is parking free?")],
        )
    )
    assert 150 < shared < 512
    assert second["id_slot"] == first["id_slot"]
    assert second["timings"]["cache_n"] >= shared - 1
