"""The in-process llama.cpp engine (llama-cpp-python) for GGUF models.

Generation is our own loop over ``Llama.generate`` so that token counts are exact, stop
strings never leak partially, multi-byte characters are never split, and a consumer that
stops iterating stops the decode at once. One ``Llama`` context is not safe to share between
threads, so each engine serialises its generations with a lock (the gateway's scheduler
decides how many engines to run).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelyard.engines.base import Event, Finish, SamplingParams, TextDelta
from modelyard.engines.stops import StopMatcher
from modelyard.errors import EngineFault, InvalidInput


class LlamaCppEngine:
    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        embedding: bool = False,
    ) -> None:
        try:
            import llama_cpp
        except ImportError as exc:  # pragma: no cover - the dependency is pinned
            raise EngineFault("llama-cpp-python is not installed") from exc
        self._llama_cpp = llama_cpp
        self._lock = threading.Lock()
        try:
            self._llm: Any = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=n_threads or os.cpu_count() or 1,
                embedding=embedding,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise EngineFault(f"llama.cpp could not load {model_path.name}: {exc}") from exc

    @property
    def context_length(self) -> int:
        return int(self._llm.n_ctx())

    def tokenize(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def complete(self, prompt: str, params: SamplingParams) -> Iterator[Event]:
        tokens = self.tokenize(prompt)
        if len(tokens) + params.max_tokens > self.context_length:
            raise InvalidInput(
                f"the prompt ({len(tokens)} tokens) plus max_tokens ({params.max_tokens}) "
                f"exceeds the model's context of {self.context_length} tokens",
                param="max_tokens",
                code="context_length_exceeded",
            )
        with self._lock:
            yield from self._generate(tokens, params)

    def _generate(self, tokens: list[int], params: SamplingParams) -> Iterator[Event]:
        llm = self._llm
        vocab = llm._model.vocab
        if params.seed is not None:
            # A seeded request must not depend on what ran before: reusing the KV-cache
            # prefix of the previous prompt changes the logits in the last bits, which is
            # enough to change a sampled token. Evaluate from scratch instead.
            llm.set_seed(params.seed)
            llm.reset()
        matcher = StopMatcher(params.stop)
        pending = b""
        produced = 0
        generated: list[int] = []
        for token in llm.generate(
            tokens,
            top_k=params.top_k,
            top_p=params.top_p,
            temp=params.temperature,
            min_p=0.0,
            repeat_penalty=1.0,
            reset=True,
        ):
            if self._llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            produced += 1
            pending += llm.detokenize([token], prev_tokens=tokens + generated)
            generated.append(token)
            text, pending = _decode_complete(pending)
            emit, stopped = matcher.feed(text)
            if emit:
                yield TextDelta(emit)
            if stopped:
                yield Finish("stop", len(tokens), produced)
                return
            if produced >= params.max_tokens:
                yield TextDelta(matcher.flush() + pending.decode("utf-8", "replace"))
                yield Finish("length", len(tokens), produced)
                return
        rest = matcher.flush() + pending.decode("utf-8", "replace")
        if rest:
            yield TextDelta(rest)
        yield Finish("stop", len(tokens), produced)

    def close(self) -> None:
        self._llm.close()


def _decode_complete(data: bytes) -> tuple[str, bytes]:
    """Decode the longest prefix of ``data`` that ends on a whole UTF-8 character."""
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8"), data[cut:]
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace"), b""
