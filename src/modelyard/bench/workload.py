"""Fixed-length prompts, so runs at different levels (and on different servers) compare."""

from __future__ import annotations

from collections.abc import Callable

_WORDS = (
    "the",
    "river",
    "runs",
    "past",
    "old",
    "stone",
    "houses",
    "where",
    "people",
    "talk",
    "about",
    "weather",
    "markets",
    "music",
    "books",
    "travel",
    "gardens",
    "science",
    "history",
    "cooking",
    "football",
    "trains",
    "letters",
    "bridges",
    "winter",
    "summer",
    "lights",
    "windows",
    "harbour",
    "boats",
    "morning",
    "evening",
    "village",
    "city",
)


def make_prompt(
    tokens: int, count_tokens: Callable[[str], int] | None = None, salt: int = 0
) -> str:
    """About ``tokens`` tokens of plain English words (exact when ``count_tokens`` is given).

    ``salt`` varies the start so that servers cannot answer every request from a prefix cache.
    """
    words: list[str] = [f"Request {salt}:"]
    index = salt
    while True:
        text = " ".join(words)
        size = count_tokens(text) if count_tokens else len(words) + 1
        if size >= tokens:
            return text
        words.append(_WORDS[index % len(_WORDS)])
        index += 7
