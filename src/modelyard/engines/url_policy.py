"""Which upstream URLs a remote engine may reach: one parser, one allow-list, checked twice.

Upstream URLs (``modelyard models add-endpoint --url``) come only from an admin-managed
allow-list (``modelyard endpoints allow|deny|list``). A rule is one of:

* ``HOST`` or ``HOST:PORT``: a host name (case-insensitive, exact), on any port or one port;
* ``ADDRESS``, ``ADDRESS:PORT`` (``[v6]:PORT``) or ``NETWORK/BITS``: IP addresses.

A URL passes when **both** hold:

1. its host is allowed by name: a name rule matches it (an IP-literal host: an address
   rule covers it), and no deny rule does;
2. **every** address the host resolves to is covered by an allow address rule and by no
   deny address rule. So ``endpoints allow vllm.internal`` alone is not enough: the network
   it lives on must be allowed too (``endpoints allow 10.20.0.0/16``); a name whose DNS
   answer moves outside the allowed networks (DNS rebinding) is refused.

Deny rules win over allow rules. The check runs at registration and again on every
connection (:mod:`modelyard.engines.safe_transport` connects to the very address it checked).

Only ``http`` and ``https`` URLs, without user information (``user:pass@``), query or
fragment, are accepted; :func:`parse_upstream_url` is the one parser, built on httpx's own URL
type so that what is checked is what the client connects to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from modelyard.errors import Forbidden, InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Effect = Literal["allow", "deny"]
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) → the addresses it resolves to`` (the system resolver, or a test's)."""

_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_API_SUFFIX = "/v1"


class UrlRefused(Forbidden):
    """An upstream URL (or the address it resolved to) that the allow-list does not allow."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="url", code="endpoint_url_refused")


@dataclass(frozen=True)
class UpstreamURL:
    """A parsed, normalised upstream base URL (no trailing ``/`` nor ``/v1``)."""

    scheme: str
    host: str
    """Lower-case name, or the IP address in its canonical form (no brackets)."""
    port: int
    path: str

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def address(self) -> IPAddress | None:
        """The host as an IP address, when it is one."""
        return _as_ip(self.host)

    def __str__(self) -> str:
        return self.base


def _as_ip(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_upstream_url(text: str, *, base: bool = True) -> UpstreamURL:
    """``text`` as an upstream URL, or InvalidInput saying what is wrong with it.

    ``base=True`` (registration) also refuses a query or fragment and strips a trailing
    ``/v1``; ``base=False`` parses a request URL (its path kept as it is)."""
    shown = text[:200]
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InvalidInput(
            f"upstream URL {shown!r} holds spaces or control characters", param="url"
        )
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"upstream URL {shown!r} is not a URL: {exc}", param="url") from exc
    scheme = url.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidInput(
            f"upstream URL {shown!r}: only http and https are allowed, not {scheme or 'none'!r}",
            param="url",
        )
    if url.userinfo:
        raise InvalidInput(
            "upstream URLs may not carry user information (user:password@); give the API key "
            "with --api-key-env instead",
            param="url",
        )
    host = url.host.lower().rstrip(".")
    address = _as_ip(host)
    if address is None and not _HOST_NAME.match(host):
        raise InvalidInput(f"upstream URL {shown!r} has no valid host name", param="url")
    if base and (url.query or url.fragment):
        raise InvalidInput(f"upstream URL {shown!r} may not carry a query or fragment", param="url")
    path = url.path.rstrip("/")
    if base and path.endswith(_API_SUFFIX):
        path = path[: -len(_API_SUFFIX)]
    return UpstreamURL(
        scheme=scheme,
        host=str(address) if address is not None else host,
        port=url.port or _DEFAULT_PORTS[scheme],
        path=path,
    )


@dataclass(frozen=True)
class Rule:
    """One allow-list entry: a host name or a network, on any port or one port."""

    text: str
    """The canonical spelling (what ``endpoints list`` shows and the table keys on)."""
    effect: Effect
    name: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def covers_name(self, host: str, port: int) -> bool:
        return self.name is not None and self.name == host and self.port in (None, port)

    def covers_address(self, address: IPAddress, port: int) -> bool:
        return (
            self.network is not None
            and address.version == self.network.version
            and address in self.network
            and self.port in (None, port)
        )


def parse_rule(text: str, effect: Effect = "allow") -> Rule:
    """``HOST``, ``HOST:PORT``, ``ADDRESS``, ``ADDRESS:PORT``, ``[V6]:PORT`` or ``NET/BITS``."""
    raw = text.strip().lower()
    if not raw or any(ch.isspace() for ch in raw):
        raise InvalidInput(f"{text!r} is not a host, host:port or network", param="rule")
    try:
        network = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        network = None
    if network is not None:
        return Rule(str(network), effect, network=_unmapped(network))
    host, port = _split_port(raw, text)
    address = _as_ip(host)
    suffix = f":{port}" if port is not None else ""
    if address is not None:
        net = ipaddress.ip_network(address)
        shown = f"[{address}]" if address.version == 6 and port is not None else str(address)
        return Rule(f"{shown}{suffix}", effect, network=net, port=port)
    host = host.rstrip(".")
    if not _HOST_NAME.match(host):
        raise InvalidInput(f"{text!r} is not a host, host:port or network", param="rule")
    return Rule(f"{host}{suffix}", effect, name=host, port=port)


def _unmapped(network: IPNetwork) -> IPNetwork:
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        mapped = network.network_address.ipv4_mapped
        return ipaddress.ip_network(f"{mapped}/{max(0, network.prefixlen - 96)}", strict=False)
    return network


def _split_port(raw: str, text: str) -> tuple[str, int | None]:
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidInput(f"{text!r} is not a host, host:port or network", param="rule")
        port_text = rest[1:] if rest else ""
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
    else:
        return raw, None
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidInput(f"{text!r}: the port must be 1-65535", param="rule")
    return host, int(port_text)


@dataclass(frozen=True)
class AllowList:
    """The rules in force (deny rules win); empty: nothing is allowed."""

    rules: tuple[Rule, ...] = ()

    def _hint(self, what: str) -> str:
        return f"allow it with `modelyard endpoints allow {what}`"

    def check_name(self, url: UpstreamURL) -> None:
        """UrlRefused unless ``url``'s host is allowed by name (or, an IP literal, by address)."""
        address = url.address
        if address is not None:
            self.check_address(url, address)
            return
        denied = [r for r in self.rules if r.effect == "deny" and r.covers_name(url.host, url.port)]
        if denied:
            raise UrlRefused(f"{url.host}:{url.port} is denied by rule {denied[0].text!r}")
        if not any(r.effect == "allow" and r.covers_name(url.host, url.port) for r in self.rules):
            raise UrlRefused(
                f"{url.host}:{url.port} is not in the endpoint allow-list; " + self._hint(url.host)
            )

    def check_address(self, url: UpstreamURL, address: IPAddress) -> None:
        """UrlRefused unless an allow rule covers ``address`` (on the URL's port) and no
        deny rule does."""
        port = url.port
        denied = [r for r in self.rules if r.effect == "deny" and r.covers_address(address, port)]
        if denied:
            raise UrlRefused(
                f"{url.host} resolves to {address}, which is denied by rule {denied[0].text!r}"
            )
        if not any(r.effect == "allow" and r.covers_address(address, port) for r in self.rules):
            where = "is" if url.address is not None else f"resolves to {address}, which is"
            raise UrlRefused(
                f"{url.host} {where} not in an allowed network; " + self._hint(str(address))
            )

    def check_addresses(self, url: UpstreamURL, addresses: Sequence[str]) -> list[IPAddress]:
        """Every resolved address checked; returns them parsed (UrlRefused on the first bad)."""
        if not addresses:
            raise UrlRefused(f"{url.host} does not resolve to any address")
        parsed = []
        for text in addresses:
            address = _as_ip(text.split("%", 1)[0])
            if address is None:
                raise UrlRefused(f"{url.host} resolved to {text!r}, which is not an IP address")
            self.check_address(url, address)
            parsed.append(address)
        return parsed


async def check_url(allow: AllowList, url: UpstreamURL, resolve: Resolver) -> list[IPAddress]:
    """The whole check: by name, then every address the host resolves to now."""
    allow.check_name(url)
    if url.address is not None:
        return [url.address]
    return allow.check_addresses(url, await resolve(url.host, url.port))


async def system_resolve(host: str, port: int) -> list[str]:
    """The system resolver's addresses for ``host`` (TCP), in its order, without repeats."""
    import asyncio
    import socket

    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UrlRefused(f"{host} cannot be resolved: {exc.strerror or exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def rules_from(rows: Iterable[tuple[str, str]]) -> AllowList:
    """An allow-list from stored ``(rule text, effect)`` rows."""
    return AllowList(
        tuple(parse_rule(text, "deny" if eff == "deny" else "allow") for text, eff in rows)
    )
