"""``modelyard audit witness serve``: the witness process on a Unix socket.

Start-up order matters when run as root: the state directory is handed to the witness user,
then the key (or the token session), the journal and the socket are opened, and only then
are privileges dropped (``setgroups([])``, ``setgid``, ``setuid``) — the gateway's user can
neither read the key nor write the journal. Requests are served one at a time, so the
journal's order is the order of signing.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import pwd
import signal
import socket
import socketserver
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from modelyard.audit.canonical import iso, parse_iso
from modelyard.audit.witness.core import Refused, WitnessCore
from modelyard.audit.witness.protocol import MAX_REQUEST_BYTES, dispatch
from modelyard.audit.witness.signers import open_signer, read_config
from modelyard.errors import Conflict, InvalidInput, ModelyardError, UserError

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"
REQUEST_TIMEOUT_S = 30.0


class _Handler(socketserver.StreamRequestHandler):
    timeout = REQUEST_TIMEOUT_S
    server: WitnessServer

    def handle(self) -> None:
        raw = self.rfile.readline(MAX_REQUEST_BYTES)
        if not raw:  # a probe (another witness checking the socket is live): no request
            return
        reply: dict[str, Any]
        try:
            request = json.loads(raw)
            if not isinstance(request, dict):
                raise ValueError("the request is not an object")
            reply = {"ok": True, "result": dispatch(self.server.core, request)}
        except Refused as exc:
            reply = {"ok": False, "kind": "refused", "code": exc.code, "message": exc.message}
        except UserError as exc:
            reply = {"ok": False, "kind": "invalid", "code": exc.code, "message": exc.message}
        except ValueError as exc:
            reply = {"ok": False, "kind": "invalid", "code": None, "message": str(exc)}
        except ModelyardError as exc:
            log.error("witness fault: %s", exc.message)
            reply = {"ok": False, "kind": "fault", "code": exc.code, "message": exc.message}
        self.wfile.write((json.dumps(reply) + "\n").encode("utf-8"))


class WitnessServer(socketserver.UnixStreamServer):
    def __init__(self, socket_path: Path, core: WitnessCore) -> None:
        self.core = core
        super().__init__(str(socket_path), _Handler)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _account(user: str) -> pwd.struct_passwd:
    try:
        account = pwd.getpwnam(user)
    except KeyError as exc:
        raise InvalidInput(
            f"the witness runs as user {user!r} (MODELYARD_AUDIT_WITNESS_USER), "
            "which does not exist: create it or name another"
        ) from exc
    if account.pw_uid == 0:
        raise InvalidInput("the witness user must not be root")
    return account


def _in_use(path: Path) -> bool:
    if not path.exists():
        return False
    if not stat.S_ISSOCK(path.stat().st_mode):
        raise InvalidInput(f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _group(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError as exc:
        raise InvalidInput(f"no group {name!r} for the witness socket") from exc


def serve(
    state_dir: Path,
    socket_path: Path,
    *,
    user: str,
    socket_group: str | None = None,
    ready: Path | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. ``ready``: a file written once the socket accepts."""
    config = read_config(state_dir)
    account = _account(user) if os.geteuid() == 0 else None
    if not socket_path.parent.is_dir():
        raise InvalidInput(f"the socket's directory {socket_path.parent} does not exist")
    if _in_use(socket_path):
        raise Conflict(f"another witness is serving on {socket_path}")
    socket_path.unlink(missing_ok=True)  # a stale socket from a process that was killed
    signer = open_signer(state_dir)
    try:
        core = WitnessCore(
            state_dir / JOURNAL_NAME,
            signer,
            purge_min_age=timedelta(days=float(config.get("purge_min_age_days", 1))),
        )
    except BaseException:
        signer.close()
        raise
    try:
        core.info()  # reads (and checks) the whole journal before accepting anyone
        if account is not None:  # the witness's files are its user's, not root's
            for path in [state_dir, *state_dir.iterdir()]:
                os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)
    except BaseException:
        core.close()
        signer.close()
        raise
    server = WitnessServer(socket_path, core)
    try:
        os.chmod(socket_path, 0o660)
        if ready is not None:  # connections wait in the listen backlog until serve_forever
            ready.write_text(str(os.getpid()))
        if account is not None:
            # Anything imported lazily must be loaded now: after the drop, the interpreter's
            # own files may be unreadable to the witness user (strptime imports _strptime).
            parse_iso(iso(datetime.now(UTC)))
            gid = _group(socket_group) if socket_group else account.pw_gid
            os.chown(socket_path, account.pw_uid, gid)
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
        elif socket_group:
            os.chown(socket_path, -1, _group(socket_group))
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        log.info("audit witness serving on %s", socket_path)
        server.serve_forever()
    finally:
        server.server_close()
        try:
            socket_path.unlink(missing_ok=True)
        except OSError as exc:  # after the privilege drop the directory may not be ours
            log.warning("could not remove the socket %s: %s", socket_path, exc.strerror)
        core.close()
        signer.close()
