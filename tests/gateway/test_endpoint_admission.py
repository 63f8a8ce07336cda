"""Admission of endpoint versions: their own in-flight limit (MODELYARD_ENDPOINT_MAX_IN_FLIGHT
per replica), every admitted request running, 429 ``queue_full`` beyond; engine workers keep
slots plus queue."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime

import pytest

from modelyard.catalog.records import ModelVersion
from modelyard.engines.endpoints import EndpointSpec
from modelyard.engines.remote_provider import max_in_flight
from modelyard.errors import RateLimited
from modelyard.gateway.admission import Admission


def _admission() -> Admission:
    return Admission(slots=2, queue_size=1, retry_after_s=3)


def test_an_endpoint_takes_its_capacity_then_429() -> None:
    admission = _admission()
    with ExitStack() as held:
        for _ in range(5):
            held.enter_context(admission.admit("remote", capacity=5))
        assert admission.running() == 5 and admission.waiting() == 0
        with pytest.raises(RateLimited) as raised:
            held.enter_context(admission.admit("remote", capacity=5))
        assert raised.value.code == "queue_full" and raised.value.retry_after_s == 3
        assert "5 requests in flight" in raised.value.message
        # a local model beside it keeps its slots and queue
        for _ in range(3):
            held.enter_context(admission.admit("local"))
        assert admission.running() == 5 + 2 and admission.waiting() == 1
        with pytest.raises(RateLimited, match="at capacity"):
            held.enter_context(admission.admit("local"))
    assert admission.running() == 0 and admission.in_flight("remote") == 0


def test_a_request_with_n_choices_takes_n_places() -> None:
    admission = _admission()
    with admission.admit("remote", 3, capacity=4):
        assert admission.in_flight("remote") == 3
        with pytest.raises(RateLimited), admission.admit("remote", 2, capacity=4):
            pass
        with admission.admit("remote", 1, capacity=4):
            assert admission.in_flight("remote") == 4
    with admission.admit("remote", 9, capacity=4):  # alone, a large request still runs
        assert admission.running() == 4 and admission.waiting() == 5


def test_the_limit_is_per_replica() -> None:
    urls = ("http://10.0.0.1:8000", "http://10.0.0.2:8000", "http://10.0.0.3:8000")
    spec = EndpointSpec(urls, "served", {})
    version = ModelVersion(
        name="remote",
        version=1,
        digest=spec.digest(),
        format="endpoint",
        size_bytes=0,
        metadata={"endpoint": {"urls": list(urls), "served_model": "served"}},
        origin="remote",
        parent=None,
        lineage={},
        source_path="endpoint",
        created_by="tests",
        created_at=datetime.now(UTC),
    )
    assert max_in_flight(version, 256) == 768
