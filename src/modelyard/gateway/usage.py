"""Token usage of one request: the one place the gateway counts it.

A generation asks for ``n`` choices of each of its prompts; choice ``index`` answers prompt
``index // n``. Every choice ends with a :class:`Finish` that carries the engine's count of
its prompt and of its completion. A prompt is counted once, with the first of its choices;
every completion is counted. The response's ``usage``, the audit record, the limiter's
settlement and the token metrics all add up :func:`choice_usage`, so they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelyard.engines.base import Finish


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    def to_json(self) -> dict[str, int]:
        """OpenAI's ``usage`` object of a completion."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }

    def embeddings_json(self) -> dict[str, int]:
        """OpenAI's ``usage`` object of an embeddings response (inputs only)."""
        return {"prompt_tokens": self.prompt_tokens, "total_tokens": self.total_tokens}


def choice_usage(index: int, n: int, finish: Finish) -> TokenUsage:
    """What choice ``index`` adds when it finishes: its completion, and its prompt when it is
    the first of the ``n`` choices of that prompt."""
    prompt = finish.prompt_tokens if index % n == 0 else 0
    return TokenUsage(prompt, finish.completion_tokens)
