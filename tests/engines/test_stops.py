from __future__ import annotations

from modelyard.engines.base import Finish, SamplingParams, collect
from modelyard.engines.fake import FakeEngine
from modelyard.engines.stops import StopMatcher


def test_stop_split_across_chunks_never_leaks() -> None:
    matcher = StopMatcher(("</end>",))
    out = []
    for piece in ["Hello </", "en", "d> more"]:
        emit, stopped = matcher.feed(piece)
        out.append(emit)
        if stopped:
            break
    assert "".join(out) == "Hello "
    assert stopped


def test_no_stop_emits_everything() -> None:
    matcher = StopMatcher(())
    assert matcher.feed("abc") == ("abc", False)


def test_fake_engine_respects_max_tokens_and_stop() -> None:
    engine = FakeEngine("one two three four five")
    text, finish = collect(engine.complete("p", SamplingParams(max_tokens=2)))
    assert text == "one two" and finish == Finish("length", 1, 2)
    text, finish = collect(engine.complete("p", SamplingParams(stop=("three",))))
    assert text == "one two " and finish.reason == "stop"
