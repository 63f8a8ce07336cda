"""llama.cpp as a library, in this process (llama-cpp-python), for GGUF models.

Serving never runs here: the gateway, ``run`` and evaluation generate through engine workers
(``engines/workers.py``). This engine is for what measures a file on the spot: the quantize
report's speed and memory, hardware calibration, and mean-pooled embeddings (opened with
``embedding=True``). Generation is our own loop over ``Llama.generate`` so that token counts
are exact, stop strings never leak partially and multi-byte characters are never split. One
``Llama`` context is not safe to share between threads, so generations take a lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from modelyard.engines.base import Event, Finish, Prompt, SamplingParams, TextDelta
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
        extra: dict[str, Any] = {}
        if embedding:
            extra["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
        try:
            self._llm: Any = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=n_threads or os.cpu_count() or 1,
                embedding=embedding,
                verbose=False,
                **extra,
            )
        except (ValueError, RuntimeError) as exc:
            raise EngineFault(f"llama.cpp could not load {model_path.name}: {exc}") from exc
        self.embedding = embedding

    @property
    def context_length(self) -> int:
        return int(self._llm.n_ctx())

    @property
    def vocab_size(self) -> int:
        return int(self._llm.n_vocab())

    def tokenize(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """A raw prompt with control tokens parsed; a chat prompt's user text literally."""
        if isinstance(prompt, str):
            return self.tokenize(prompt)
        tokens = list(self._llm.tokenize(b"", add_bos=True, special=True))
        for part in prompt:
            data = part.text.encode("utf-8")
            tokens += self._llm.tokenize(data, add_bos=False, special=part.special)
        return tokens

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def complete(self, prompt: Prompt, params: SamplingParams) -> Iterator[Event]:
        tokens = self.tokenize_prompt(prompt)
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
        try:
            stream = llm.generate(
                tokens,
                top_k=params.top_k,
                top_p=params.top_p,
                temp=params.temperature,
                min_p=0.0,
                repeat_penalty=1.0,
                reset=True,
            )
            for token in stream:
                if self._llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                produced += 1
                piece = llm.detokenize([token], prev_tokens=tokens + generated)
                pending += piece
                generated.append(token)
                text, pending = _decode_complete(pending)
                emit, stopped = matcher.feed(text)
                if emit:
                    yield TextDelta(emit)
                if stopped:
                    yield Finish("stop", len(tokens), produced)
                    return
                if produced >= params.max_tokens:
                    if rest := matcher.flush() + pending.decode("utf-8", "replace"):
                        yield TextDelta(rest)
                    yield Finish("length", len(tokens), produced)
                    return
        except RuntimeError as exc:
            raise EngineFault(f"llama.cpp generation failed: {exc}") from exc
        rest = matcher.flush() + pending.decode("utf-8", "replace")
        if rest:
            yield TextDelta(rest)
        yield Finish("stop", len(tokens), produced)

    def embed(self, texts: Sequence[str]) -> tuple[list[list[float]], int]:
        """Mean-pooled, L2-normalised embeddings and the number of input tokens."""
        if not self.embedding:
            raise InvalidInput("this engine was not opened in embedding mode", param="model")
        counts = [len(self.tokenize(text)) for text in texts]
        if (longest := max(counts, default=0)) > self.context_length:
            raise InvalidInput(
                f"an input has {longest} tokens; the model's context is {self.context_length}",
                param="input",
                code="context_length_exceeded",
            )
        with self._lock:
            try:
                vectors = self._llm.embed(list(texts), normalize=True)
            except RuntimeError as exc:
                raise EngineFault(f"llama.cpp embedding failed: {exc}") from exc
        return [[float(x) for x in vector] for vector in vectors], sum(counts)

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
