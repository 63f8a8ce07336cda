"""``modelyard serve`` binds its own socket: ``--port 0`` gets a port no other process can
take between choosing and binding it, and the URL it prints names that port."""

from __future__ import annotations

import re
import socket

import pytest

from modelyard.cli.serve import _bind, _url
from modelyard.errors import Conflict, InvalidInput


def test_port_zero_binds_a_real_port_that_listens_only_later() -> None:
    sock = _bind("127.0.0.1", 0)
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
        assert not sock.get_inheritable()  # engine workers never hold the gateway's port
        with pytest.raises(ConnectionRefusedError):  # bound, not accepting before start-up
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        sock.listen()
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert _url("127.0.0.1", port) == f"http://127.0.0.1:{port}"
    finally:
        sock.close()


def test_a_taken_port_is_a_conflict_and_a_bad_host_is_invalid() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(Conflict, match=re.escape(f"on 127.0.0.1:{port}:")):
            _bind("127.0.0.1", port)
    with pytest.raises(InvalidInput, match=re.escape("on 203.0.113.7:0:")):
        _bind("203.0.113.7", 0)  # an address this machine does not have


def test_ipv6_urls_are_bracketed() -> None:
    assert _url("::1", 8080) == "http://[::1]:8080"
