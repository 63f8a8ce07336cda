"""A small synchronous client for a gateway's Batch API (``/v1/files``, ``/v1/batches``).

It is what ``modelyard batch`` talks through: one ``httpx.Client`` with the key as a bearer
token, and the gateway's OpenAI error JSON turned back into the matching
:mod:`modelyard.errors` class, so that the CLI prints the server's message and exits with the
same code as a local command would. The key is held as a ``SecretStr`` and sent only in the
``Authorization`` header: it is never part of a message, a ``repr`` or a log line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from pydantic import SecretStr

from modelyard.config import Settings
from modelyard.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    ModelyardError,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    UserError,
)

TIMEOUT_S = 60.0
"""Per request: uploads and downloads of large files, not only short JSON answers."""

COMPLETION_WINDOW = "24h"
"""The only completion window the Batch API offers (as OpenAI's)."""

_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}")
"""A file or batch id (``file-…``, ``batch_…``)."""

_BY_STATUS: Mapping[int, type[UserError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: TooLarge,
    422: InvalidInput,
}
"""The client error for each HTTP status a gateway answers (429 and 5xx apart)."""


def api_base(url: str) -> str:
    """``url`` with ``/v1`` added (once: a URL that already ends in ``/v1`` is kept)."""
    base = url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InvalidInput(
            f"the gateway URL {url!r} must start with http:// or https:// "
            "(set MODELYARD_URL or --url)",
            param="url",
        )
    return base if base.endswith("/v1") else f"{base}/v1"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _error_body(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of OpenAI's error JSON; empty when the answer is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def error_for(response: httpx.Response) -> ModelyardError:
    """The modelyard error matching a gateway's non-2xx answer, with the server's message."""
    status = response.status_code
    body = _error_body(response)
    message = body.get("message")
    if not isinstance(message, str) or not message:
        text = response.text.strip()[:200]
        message = f"the gateway answered HTTP {status}" + (f": {text}" if text else "")
    param = body.get("param") if isinstance(body.get("param"), str) else None
    code = body.get("code") if isinstance(body.get("code"), str) else None
    if status == 429:
        return RateLimited(message, retry_after_s=_retry_after(response) or 1.0, code=code)
    if status >= 500:
        return Unavailable(message, param=param, code=code, retry_after_s=_retry_after(response))
    return _BY_STATUS.get(status, InvalidInput)(message, param=param, code=code)


class BatchClient:
    """The Batch API of one gateway, as one key holder.

    ``url`` and ``api_key`` default to ``Settings.url`` and ``Settings.api_key``
    (``MODELYARD_URL``, ``MODELYARD_API_KEY``); ``transport`` replaces the network (an
    ``httpx.MockTransport`` in tests). Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        url: str | None = None,
        api_key: SecretStr | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        key = api_key if api_key is not None else settings.api_key
        if key is None or not key.get_secret_value():
            raise Unauthorized(
                "no API key: set MODELYARD_API_KEY (or name another variable with --key-env)",
                param="api_key",
            )
        self.url = api_base(url if url is not None else settings.url)
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key.get_secret_value()}"},
            timeout=timeout_s,
            follow_redirects=False,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"BatchClient(url={self.url!r})"

    def __enter__(self) -> BatchClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- one exchange ------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; transport failures and error answers become modelyard errors."""
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as error:
            raise InvalidInput(
                f"cannot reach the gateway at {self.url} ({type(error).__name__}: {error}); "
                "is it running? Point MODELYARD_URL (or --url) at it.",
                param="url",
            ) from error
        except httpx.TransportError as error:
            raise Unavailable(
                f"the gateway at {self.url} did not answer {method} {path} "
                f"({type(error).__name__}: {error})"
            ) from error
        if response.is_success:
            return response
        raise error_for(response)

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as error:
            raise Unavailable(f"the gateway answered {method} {path} with no JSON") from error
        if not isinstance(body, dict):
            raise Unavailable(f"the gateway answered {method} {path} with no JSON object")
        return body

    # -- the API ------------------------------------------------------------------------------

    def upload(self, path: Path) -> dict[str, Any]:
        """Upload a JSONL input file (``purpose=batch``); the gateway's FileObject."""
        try:
            with path.open("rb") as handle:
                return self._json(
                    "POST",
                    "/files",
                    files={"file": (path.name, handle, "application/jsonl")},
                    data={"purpose": "batch"},
                )
        except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
            raise InvalidInput(f"cannot read {path}: {error.strerror}", param="file") from error

    def create(
        self, file_id: str, endpoint: str, metadata: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Start a batch over an uploaded file; the new Batch (status ``validating``)."""
        body: dict[str, Any] = {
            "input_file_id": file_id,
            "endpoint": endpoint,
            "completion_window": COMPLETION_WINDOW,
        }
        if metadata:
            body["metadata"] = dict(metadata)
        return self._json("POST", "/batches", json=body)

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        """The batch as it stands now."""
        return self._json("GET", f"/batches/{_segment(batch_id)}")

    def list(self, limit: int = 20) -> dict[str, Any]:
        """The newest batches first: OpenAI's list object (``data``, ``has_more``)."""
        return self._json("GET", "/batches", params={"limit": limit})

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Ask the gateway to cancel a batch; it answers ``cancelling``, then ``cancelled``."""
        return self._json("POST", f"/batches/{_segment(batch_id)}/cancel")

    def content(self, file_id: str) -> bytes:
        """A file's bytes (a batch's output or error JSONL)."""
        return self._send("GET", f"/files/{_segment(file_id)}/content").content


def _segment(identifier: str) -> str:
    """An id as one path segment: anything but letters, digits, ``_``, ``-`` and ``.`` (not
    first) is refused, so that an id can never point at another route."""
    if _ID.fullmatch(identifier) is None:
        raise InvalidInput(f"invalid id {identifier!r}", param="id")
    return identifier
