"""Request bodies as pydantic models (validation errors become OpenAI-shaped 400s).

Unknown fields are ignored, as OpenAI's API does; fields we cannot honour are refused with a
400 naming the field rather than silently ignored.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelyard.errors import InvalidInput


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = False


class ChatMessage(_Body):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None

    def text_bytes(self) -> int:
        """UTF-8 bytes this message can put into a prompt: its text, name and other fields."""
        size = _utf8_len(self.name) if self.name else 0
        if isinstance(self.content, str):
            size += _utf8_len(self.content)
        elif self.content:
            size += _json_bytes(self.content)
        if self.model_extra:
            size += _json_bytes(self.model_extra)
        return size


def _utf8_len(text: str) -> int:
    """UTF-8 length; a lone surrogate (valid JSON, not encodable) counts and is not an error
    here: the request goes on to the layers that audit it and answer its error."""
    return len(text.encode("utf-8", "surrogatepass"))


def _json_bytes(value: Any) -> int:
    return _utf8_len(json.dumps(value, ensure_ascii=False, default=str))


class _Sampling(_Body):
    model: str = Field(min_length=1, max_length=200)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)
    logit_bias: dict[str, float] | None = None
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for token, bias in (value or {}).items():
            if not token.isdigit():
                raise ValueError(f"keys must be token ids, got {token!r}")
            if not -100 <= bias <= 100:
                raise ValueError("biases must be between -100 and 100")
        return value

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def bias(self) -> tuple[tuple[int, float], ...]:
        return tuple((int(k), float(v)) for k, v in (self.logit_bias or {}).items())

    def refuse_unsupported(self) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise InvalidInput(f"{name} is not supported by this gateway", param=name)


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def check_prompt_size(self, *, max_messages: int, max_bytes: int) -> None:
        """400 for more messages, or more message and tool text, than the gateway takes;
        checked before any rendering or tokenization (linear in the body)."""
        if len(self.messages) > max_messages:
            raise InvalidInput(
                f"too many messages: {len(self.messages)} (this gateway takes at most "
                f"{max_messages} per request)",
                param="messages",
                code="too_many_messages",
            )
        size = sum(m.text_bytes() for m in self.messages)
        if self.tools:
            size += _json_bytes(self.tools)
        if size > max_bytes:
            raise InvalidInput(
                f"the messages are too large: {size} bytes of text (this gateway takes at most "
                f"{max_bytes} bytes per request)",
                param="messages",
                code="prompt_too_large",
            )


class CompletionRequest(_Sampling):
    prompt: str | list[str] = ""
    max_tokens: int | None = Field(default=16, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    def prompts(self) -> tuple[str, ...]:
        if isinstance(self.prompt, str):
            return (self.prompt,)
        if not self.prompt:
            raise InvalidInput("prompt must not be an empty list", param="prompt")
        return tuple(self.prompt)

    def check_prompt_size(self, *, max_bytes: int) -> None:
        """400 for prompts with more text than the gateway takes (before tokenization)."""
        size = sum(_utf8_len(p) for p in self.prompts())
        if size > max_bytes:
            raise InvalidInput(
                f"the prompt is too large: {size} bytes (this gateway takes at most "
                f"{max_bytes} bytes per request)",
                param="prompt",
                code="prompt_too_large",
            )


class EmbeddingRequest(_Body):
    model: str = Field(min_length=1, max_length=200)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = Field(default=None, max_length=256)

    def inputs(self) -> tuple[str, ...]:
        values = (self.input,) if isinstance(self.input, str) else tuple(self.input)
        if not values:
            raise InvalidInput("input must not be empty", param="input")
        if any(not v for v in values):
            raise InvalidInput("input must not contain empty strings", param="input")
        return values
