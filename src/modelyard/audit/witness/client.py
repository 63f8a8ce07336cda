"""How the gateway and the CLI reach the witness.

:func:`open_witness` returns a :class:`SocketWitness` when ``MODELYARD_AUDIT_WITNESS`` names
the witness's Unix socket, else a :class:`LocalWitness`: the same rules run in process over
``<home>/audit/checkpoints.jsonl`` with the key in ``<home>/audit`` — convenient for one
machine, but no evidence against whoever can write the home (``audit verify`` says so).
"""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from modelyard.audit.secrets import signing_key
from modelyard.audit.witness.core import Refused, WitnessCore
from modelyard.audit.witness.signers import KEY_NAME, FileSigner
from modelyard.audit.witness.statements import (
    HeadStatement,
    PurgeStatement,
    Statement,
    parse_statement,
)
from modelyard.config import Settings
from modelyard.errors import InvalidInput, Unavailable

LOCAL_PURGE_MIN_AGE = timedelta(days=1)
_S = TypeVar("_S", HeadStatement, PurgeStatement)


class Witness(Protocol):
    kind: str
    """``witness`` (a separate process) or ``local`` (the key in the home)."""

    def info(self) -> dict[str, Any]: ...

    def journal(self) -> list[Statement]: ...

    def sign_head(
        self, from_seq: int, from_hash: str, bodies: list[str], seq: int, head_hash: str
    ) -> HeadStatement: ...

    def anchors(self, through_seq: int) -> dict[str, Any]: ...

    def sign_purge(
        self, through_seq: int, from_seq: int, from_hash: str, bodies: list[str]
    ) -> PurgeStatement: ...

    def close(self) -> None: ...


class LocalWitness:
    kind = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._core: WitnessCore | None = None

    @property
    def core(self) -> WitnessCore:
        if self._core is None:
            signing_key(self.settings)  # creates the in-home key pair on first use
            self._core = WitnessCore(
                self.settings.audit_dir / "checkpoints.jsonl",
                FileSigner(self.settings.audit_dir / KEY_NAME),
                purge_min_age=LOCAL_PURGE_MIN_AGE,
                strict=False,
            )
        return self._core

    def info(self) -> dict[str, Any]:
        return self.core.info()

    def journal(self) -> list[Statement]:
        return self.core.journal()

    def sign_head(
        self, from_seq: int, from_hash: str, bodies: list[str], seq: int, head_hash: str
    ) -> HeadStatement:
        return self.core.sign_head(from_seq, from_hash, bodies, seq, head_hash)

    def anchors(self, through_seq: int) -> dict[str, Any]:
        return self.core.anchors(through_seq)

    def sign_purge(
        self, through_seq: int, from_seq: int, from_hash: str, bodies: list[str]
    ) -> PurgeStatement:
        return self.core.sign_purge(through_seq, from_seq, from_hash, bodies)

    def close(self) -> None:
        if self._core is not None:
            self._core.close()
            self._core = None


class SocketWitness:
    kind = "witness"

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path = path
        self.timeout_s = timeout_s

    def _call(self, request: dict[str, Any]) -> Any:
        data = (json.dumps(request) + "\n").encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout_s)
                conn.connect(str(self.path))
                conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
                chunks = []
                while chunk := conn.recv(1 << 16):
                    chunks.append(chunk)
        except OSError as exc:
            raise Unavailable(
                f"the audit witness at {self.path} cannot be reached: {exc.strerror or exc}"
            ) from exc
        try:
            reply = json.loads(b"".join(chunks))
        except ValueError as exc:
            raise Unavailable(f"the audit witness at {self.path} sent no valid reply") from exc
        if not isinstance(reply, dict):
            raise Unavailable(f"the audit witness at {self.path} sent no valid reply")
        if reply.get("ok") is True:
            return reply.get("result")
        message = f"the audit witness refused: {reply.get('message')}"
        if reply.get("kind") == "refused":
            raise Refused(message, code=str(reply.get("code")))
        if reply.get("kind") == "invalid":
            raise InvalidInput(message)
        raise Unavailable(f"the audit witness failed: {reply.get('message')}")

    def info(self) -> dict[str, Any]:
        result = self._call({"op": "info"})
        if not isinstance(result, dict) or not isinstance(result.get("public_key"), str):
            raise Unavailable(f"the audit witness at {self.path} sent no valid reply")
        last = result.get("last")
        if last is not None and not (
            isinstance(last, dict)
            and isinstance(last.get("seq"), int)
            and isinstance(last.get("hash"), str)
        ):
            raise Unavailable(f"the audit witness at {self.path} sent no valid reply")
        return result

    def journal(self) -> list[Statement]:
        result = self._call({"op": "journal"})
        if not isinstance(result, list):
            raise Unavailable(f"the audit witness at {self.path} sent no valid journal")
        try:
            return [parse_statement(item) for item in result]
        except ValueError as exc:
            raise Unavailable(f"the audit witness sent a malformed journal: {exc}") from exc

    def sign_head(
        self, from_seq: int, from_hash: str, bodies: list[str], seq: int, head_hash: str
    ) -> HeadStatement:
        request = {"op": "sign_head", "from_seq": from_seq, "from_hash": from_hash}
        request |= {"bodies": bodies, "seq": seq, "hash": head_hash}
        return self._statement(request, HeadStatement)

    def anchors(self, through_seq: int) -> dict[str, Any]:
        result = self._call({"op": "anchors", "through_seq": through_seq})
        if not isinstance(result, dict):
            raise Unavailable("the audit witness sent no valid anchors")
        return result

    def sign_purge(
        self, through_seq: int, from_seq: int, from_hash: str, bodies: list[str]
    ) -> PurgeStatement:
        request = {"op": "sign_purge", "through_seq": through_seq, "from_seq": from_seq}
        request |= {"from_hash": from_hash, "bodies": bodies}
        return self._statement(request, PurgeStatement)

    def _statement(self, request: dict[str, Any], expected: type[_S]) -> _S:
        try:
            statement = parse_statement(self._call(request))
        except ValueError as exc:
            raise Unavailable(f"the audit witness sent a malformed statement: {exc}") from exc
        if not isinstance(statement, expected):
            raise Unavailable("the audit witness sent the wrong kind of statement")
        return statement

    def close(self) -> None:
        return None


def open_witness(settings: Settings) -> Witness:
    if settings.audit_witness is not None:
        return SocketWitness(settings.audit_witness, settings.audit_witness_timeout_s)
    return LocalWitness(settings)
