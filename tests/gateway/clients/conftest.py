"""The clients' tests run against the gateway tests' session server (``server`` in
tests/gateway/conftest.py, shared by living below it): a real ``modelyard serve`` on an empty
home, serving the bundled models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.gateway.clients.doc import close_http_clients

__all__ = ["close_after"]

T = TypeVar("T")


@pytest.fixture
def close_after() -> Iterator[Callable[[T], T]]:
    """``close_after(client)`` returns the client and closes its HTTP connections after the
    test, pass or fail."""
    held: list[Any] = []

    def hold(obj: T) -> T:
        held.append(obj)
        return obj

    yield hold
    close_http_clients(held)
