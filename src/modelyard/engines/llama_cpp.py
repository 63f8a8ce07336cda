"""The in-process llama.cpp engine (llama-cpp-python) for GGUF models.

Generation is our own loop over ``Llama.generate`` so that token counts are exact, stop
strings never leak partially, multi-byte characters are never split, and a consumer that
stops iterating stops the decode at once. One ``Llama`` context is not safe to share between
threads, so each engine serialises its generations with a lock (the gateway's scheduler
gives every worker slot its own engine).

Beyond plain sampling the loop supports log-probabilities and logit bias (through a logits
processor that sees the raw logits in token-id order), grammar-constrained decoding (GBNF,
used for JSON mode and JSON schemas) and, when opened with ``embedding=True``, mean-pooled
embeddings.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.engines.base import (
    Event,
    Finish,
    SamplingParams,
    TextDelta,
    TokenLogprob,
    TopLogprob,
)
from modelyard.engines.stops import StopMatcher
from modelyard.errors import EngineFault, InvalidInput


class _LogitTap:
    """A logits processor: adds the bias, and keeps the log-softmax for log-probabilities."""

    def __init__(self, bias: tuple[tuple[int, float], ...], want_logprobs: bool) -> None:
        self.ids = np.array([token for token, _ in bias], dtype=np.intc)
        self.values = np.array([value for _, value in bias], dtype=np.single)
        self.want_logprobs = want_logprobs
        self.last: Any = None

    def __call__(self, _input_ids: Any, scores: Any) -> Any:
        if len(self.ids):
            scores = scores.copy()
            scores[self.ids] += self.values
        if self.want_logprobs:
            shifted = scores.astype(np.float64) - float(np.max(scores))
            self.last = shifted - np.log(np.exp(shifted).sum())
        return scores


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
        for token, _ in params.logit_bias:
            if not 0 <= token < self.vocab_size:
                raise InvalidInput(
                    f"logit_bias names token {token}, outside the vocabulary "
                    f"(0..{self.vocab_size - 1})",
                    param="logit_bias",
                )
        grammar = self._grammar(params.grammar) if params.grammar else None
        with self._lock:
            yield from self._generate(tokens, params, grammar)

    def _grammar(self, text: str) -> Any:
        from llama_cpp.llama_grammar import LlamaGrammar

        return LlamaGrammar.from_string(text, verbose=False)

    def _generate(self, tokens: list[int], params: SamplingParams, grammar: Any) -> Iterator[Event]:
        llm = self._llm
        vocab = llm._model.vocab
        if params.seed is not None:
            # A seeded request must not depend on what ran before: reusing the KV-cache
            # prefix of the previous prompt changes the logits in the last bits, which is
            # enough to change a sampled token. Evaluate from scratch instead.
            llm.set_seed(params.seed)
            llm.reset()
        tap = None
        if params.logprobs is not None or params.logit_bias:
            tap = _LogitTap(params.logit_bias, params.logprobs is not None)
        matcher = StopMatcher(params.stop)
        pending = b""
        produced = 0
        generated: list[int] = []
        held: list[TokenLogprob] = []
        try:
            stream = llm.generate(
                tokens,
                top_k=params.top_k,
                top_p=params.top_p,
                temp=params.temperature,
                min_p=0.0,
                repeat_penalty=1.0,
                reset=True,
                logits_processor=[tap] if tap is not None else None,
                grammar=grammar,
            )
            for token in stream:
                if self._llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                produced += 1
                piece = llm.detokenize([token], prev_tokens=tokens + generated)
                if tap is not None and tap.last is not None and params.logprobs is not None:
                    held.append(self._token_logprob(token, piece, tap.last, params.logprobs))
                pending += piece
                generated.append(token)
                text, pending = _decode_complete(pending)
                emit, stopped = matcher.feed(text)
                if emit or held:
                    yield TextDelta(emit, tuple(held))
                    held = []
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

    def _token_logprob(self, token: int, piece: bytes, logprobs: Any, top_n: int) -> TokenLogprob:
        top: tuple[TopLogprob, ...] = ()
        if top_n > 0:
            best = np.argpartition(logprobs, -top_n)[-top_n:]
            best = best[np.argsort(logprobs[best])[::-1]]
            top = tuple(self._top(int(i), float(logprobs[i])) for i in best)
        return TokenLogprob(
            token=piece.decode("utf-8", "replace"),
            logprob=float(logprobs[token]),
            token_bytes=piece,
            top=top,
        )

    def _top(self, token: int, logprob: float) -> TopLogprob:
        piece = self._llm.detokenize([token])
        return TopLogprob(piece.decode("utf-8", "replace"), logprob, piece)

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
