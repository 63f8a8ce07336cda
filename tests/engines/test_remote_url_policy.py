"""Upstream URLs: one parser, an allow-list of names and networks, every resolved address
checked at registration and again at connect time (DNS rebinding), redirects never followed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest

from modelyard.engines.safe_transport import SafeTransport, upstream_client
from modelyard.engines.url_policy import (
    AllowList,
    UrlRefused,
    check_url,
    parse_rule,
    parse_upstream_url,
)
from modelyard.errors import InvalidInput
from tests.remote_stub import StubConfig, stub_server


def allow(*rules: str, deny: tuple[str, ...] = ()) -> AllowList:
    return AllowList(
        tuple(parse_rule(r) for r in rules) + tuple(parse_rule(r, "deny") for r in deny)
    )


def resolver(table: dict[str, list[str]]) -> Callable[[str, int], object]:
    async def resolve(host: str, port: int) -> list[str]:
        return list(table[host])

    return resolve


@pytest.mark.parametrize(
    ("text", "base"),
    [
        ("http://vllm.internal:8000", "http://vllm.internal:8000"),
        ("https://VLLM.internal/v1/", "https://vllm.internal:443"),
        ("http://10.0.0.5:8000/v1", "http://10.0.0.5:8000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://gpu-1.example:80/serving/v1", "http://gpu-1.example:80/serving"),
    ],
)
def test_urls_are_parsed_and_normalised(text: str, base: str) -> None:
    assert parse_upstream_url(text).base == base


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("http://user:secret@vllm.internal:8000", "user information"),
        ("http://token@vllm.internal:8000", "user information"),
        ("ftp://vllm.internal/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http://vllm.internal:8000/?key=1", "query"),
        ("http://vllm.internal:8000/#frag", "query or fragment"),
        ("http://vllm internal:8000", "spaces"),
        ("http://vllm.internal\r\n:8000", "control"),
        ("http://", "host"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_upstream_url(text)
    assert why in raised.value.message
    assert "secret" not in raised.value.message


def test_rules_have_one_spelling() -> None:
    assert parse_rule("VLLM.internal").text == "vllm.internal"
    assert parse_rule("vllm.internal:8000").port == 8000
    assert parse_rule("10.1.2.3").text == "10.1.2.3/32"
    assert parse_rule("10.1.2.0/24").text == "10.1.2.0/24"
    assert parse_rule("10.1.2.3:8000").text == "10.1.2.3:8000"
    assert parse_rule("[::1]:8080").text == "[::1]:8080"
    for bad in ("", "a b", "host:99999", "10.0.0.0/8:80", "[::1"):
        with pytest.raises(InvalidInput):
            parse_rule(bad)


def test_an_ip_url_needs_an_address_rule_and_deny_wins() -> None:
    url = parse_upstream_url("http://10.0.0.5:8000")
    allow("10.0.0.0/8").check_name(url)
    allow("10.0.0.5:8000").check_name(url)
    with pytest.raises(UrlRefused, match="not in an allowed network"):
        allow("10.0.0.5:9000").check_name(url)
    with pytest.raises(UrlRefused, match="denied"):
        allow("10.0.0.0/8", deny=("10.0.0.5",)).check_name(url)
    with pytest.raises(UrlRefused):
        AllowList().check_name(url)  # empty: nothing is allowed


def test_a_name_needs_its_rule_and_every_resolved_address_allowed() -> None:
    url = parse_upstream_url("http://vllm.internal:8000")
    rules = allow("vllm.internal", "10.20.0.0/16")
    good = asyncio.run(check_url(rules, url, resolver({"vllm.internal": ["10.20.0.7"]})))
    assert [str(a) for a in good] == ["10.20.0.7"]
    with pytest.raises(UrlRefused, match="not in the endpoint allow-list"):
        asyncio.run(check_url(allow("10.20.0.0/16"), url, resolver({})))
    # the name is allowed but resolves (also) outside the allowed networks
    outside = resolver({"vllm.internal": ["10.20.0.7", "169.254.169.254"]})
    with pytest.raises(UrlRefused, match=re.escape("169.254.169.254")):
        asyncio.run(check_url(rules, url, outside))
    mapped = resolver({"vllm.internal": ["::ffff:169.254.169.254"]})
    with pytest.raises(UrlRefused, match=re.escape("169.254.169.254")):
        asyncio.run(check_url(rules, url, mapped))
    with pytest.raises(UrlRefused, match="not in the endpoint allow-list"):
        allow("vllm.internal:9000", "10.20.0.0/16").check_name(url)  # another port only
    with pytest.raises(UrlRefused, match="denied"):
        allow("vllm.internal", "10.20.0.0/16", deny=("vllm.internal:8000",)).check_name(url)


def test_the_transport_connects_to_the_checked_address_and_refuses_rebinding() -> None:
    """Registration saw an allowed address; at connect time the name resolves elsewhere."""
    answers = {"stub.test": ["127.0.0.1"]}

    async def resolve(host: str, port: int) -> list[str]:
        return list(answers[host])

    async def run(port: int) -> tuple[int, str]:
        async def rules() -> AllowList:
            return allow("stub.test", "127.0.0.1")

        async with upstream_client(
            SafeTransport(rules, resolve=resolve), connect_timeout_s=2, read_timeout_s=5
        ) as client:
            first = await client.get(f"http://stub.test:{port}/v1/models")
            answers["stub.test"] = ["10.9.9.9"]  # the DNS answer moved (rebinding)
            try:
                await client.get(f"http://stub.test:{port}/v1/models")
            except UrlRefused as exc:
                return first.status_code, exc.message
            return first.status_code, "not refused"

    with stub_server() as stub:
        status, refusal = asyncio.run(run(stub.port))
        assert status == 200
        assert "10.9.9.9" in refusal and "not in an allowed network" in refusal
        assert stub.received == [] or all(r.path == "/v1/models" for r in stub.received)


def test_redirects_are_not_followed() -> None:
    async def run(url: str) -> httpx.Response:
        async def rules() -> AllowList:
            return allow("127.0.0.1")

        async with upstream_client(
            SafeTransport(rules), connect_timeout_s=2, read_timeout_s=5
        ) as client:
            return await client.post(f"{url}/v1/completions", json={"prompt": "x"})

    with stub_server(StubConfig(redirect_to="http://169.254.169.254")) as stub:
        response = asyncio.run(run(stub.url))
    assert response.status_code == 307
    assert len(stub.received) == 1  # the redirect target was never asked
