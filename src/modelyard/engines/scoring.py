"""Log-likelihood scoring with llama.cpp: how likely a continuation is after a context.

This is what multiple-choice evaluation, perplexity and bias probes need, and what a
generation engine does not give: the log-probability of *given* tokens. The scorer opens
its own ``llama_cpp.Llama`` context (separate from the generation engine) and decodes in
batches that ask llama.cpp for the logits of every position, turning each row into
log-probabilities at once so that only one batch of logits is ever held in memory.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from modelyard.engines.base import Prompt
from modelyard.errors import EngineFault, InvalidInput


@dataclass(frozen=True)
class LogLikelihood:
    """Sum of log-probabilities of a continuation's tokens, and whether greedy would pick it."""

    logprob: float
    tokens: int
    is_greedy: bool


@dataclass(frozen=True)
class TokenNll:
    """Negative log-likelihood summed over ``tokens`` predicted tokens of a text."""

    nll: float
    tokens: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / self.tokens) if self.tokens else float("nan")


class Scorer(Protocol):
    @property
    def context_length(self) -> int: ...

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]: ...

    def loglikelihood(self, context: Prompt, continuation: str) -> LogLikelihood: ...

    def token_nll(self, tokens: list[int]) -> TokenNll: ...

    def close(self) -> None: ...


def _logprob(logits: npt.NDArray[np.float32], target: int) -> float:
    """log softmax(logits)[target], computed stably without materialising the softmax."""
    peak = float(logits.max())
    total = float(np.exp(logits - peak).sum(dtype=np.float64))
    return float(logits[target]) - peak - math.log(total)


class LlamaCppScorer:
    """Scores token sequences with a llama.cpp model loaded from a GGUF file."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 2048,
        n_batch: int = 128,
        n_threads: int | None = None,
    ) -> None:
        try:
            import llama_cpp
        except ImportError as exc:  # pragma: no cover - the dependency is pinned
            raise EngineFault("llama-cpp-python is not installed") from exc
        self._lock = threading.Lock()
        self._n_batch = n_batch
        try:
            self._llm: Any = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_ubatch=n_batch,
                n_threads=n_threads or os.cpu_count() or 1,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise EngineFault(f"llama.cpp could not load {model_path.name}: {exc}") from exc
        self._n_vocab = int(self._llm.n_vocab())
        self._cached: list[int] = []

    @property
    def context_length(self) -> int:
        return int(self._llm.n_ctx())

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def _logprobs(self, tokens: list[int], first: int) -> tuple[list[float], list[bool]]:
        """Log-probability of ``tokens[i]`` given ``tokens[:i]`` for every ``i >= first``.

        Returns one value per predicted token and whether it was the model's top choice.
        """
        if first < 1:
            raise InvalidInput("scoring needs at least one context token before the scored ones")
        if len(tokens) > self.context_length:
            raise InvalidInput(
                f"the text to score ({len(tokens)} tokens) exceeds the scorer's context "
                f"of {self.context_length} tokens",
                code="context_length_exceeded",
            )
        with self._lock:
            try:
                return self._decode_scored(tokens, first)
            except BaseException:
                self._cached = []
                self._llm._ctx.kv_cache_seq_rm(-1, 0, -1)
                raise

    def _reuse_prefix(self, tokens: list[int], first: int) -> int:
        """Keep the KV cache of the prefix shared with the previous call (the options of one
        question share their context); positions whose logits we need are always decoded."""
        common = 0
        for a, b in zip(self._cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        keep = min(common, first - 1)
        if not self._llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            self._llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            keep = 0
        self._cached = self._cached[:keep]
        return keep

    def _decode_scored(self, tokens: list[int], first: int) -> tuple[list[float], list[bool]]:
        logprobs: list[float] = []
        greedy: list[bool] = []
        llm = self._llm
        end = len(tokens) - 1  # the last token's logits predict nothing we score
        for start in range(self._reuse_prefix(tokens, first), end, self._n_batch):
            chunk = tokens[start : min(start + self._n_batch, end)]
            # Logits at position p predict token p + 1; ask only for the ones we score.
            wanted = [p for p in range(start, start + len(chunk)) if p >= first - 1]
            llm._batch.set_batch(batch=chunk, n_past=start, logits_all=False)
            for offset in range(len(chunk)):
                llm._batch.batch.logits[offset] = start + offset >= first - 1
            if not wanted:
                llm._batch.batch.logits[len(chunk) - 1] = True
            llm._ctx.decode(llm._batch)
            self._cached = tokens[: start + len(chunk)]
            for position in wanted:
                row = np.ctypeslib.as_array(
                    llm._ctx.get_logits_ith(position - start), shape=(self._n_vocab,)
                )
                target = tokens[position + 1]
                logprobs.append(_logprob(row, target))
                greedy.append(int(row.argmax()) == target)
        return logprobs, greedy

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """A raw prompt with control tokens parsed; a chat prompt's user text literally."""
        if isinstance(prompt, str):
            return self.tokenize(prompt, add_bos=True)
        tokens = list(self._llm.tokenize(b"", add_bos=True, special=True))
        for part in prompt:
            data = part.text.encode("utf-8")
            tokens += self._llm.tokenize(data, add_bos=False, special=part.special)
        return tokens

    def loglikelihood(self, context: Prompt, continuation: str) -> LogLikelihood:
        """log P(continuation | context), tokenising the two separately as lm-eval does.

        The continuation is data (an answer option), so control-token strings in it stay text.
        """
        context_tokens = self.tokenize_prompt(context)
        data = continuation.encode("utf-8")
        continuation_tokens = list(self._llm.tokenize(data, add_bos=False, special=False))
        if not continuation_tokens:
            raise InvalidInput("the continuation to score is empty")
        logprobs, greedy = self._logprobs(context_tokens + continuation_tokens, len(context_tokens))
        return LogLikelihood(sum(logprobs), len(logprobs), all(greedy))

    def token_nll(self, tokens: list[int]) -> TokenNll:
        """Negative log-likelihood of every token after the first (perplexity's numerator)."""
        logprobs, _ = self._logprobs(tokens, 1)
        return TokenNll(-sum(logprobs), len(logprobs))

    def close(self) -> None:
        self._llm.close()
