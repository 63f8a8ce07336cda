"""Server-sent events as OpenAI streams them: ``data: {json}`` frames, then ``data: [DONE]``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from modelyard.errors import ModelyardError

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def _guarded(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """An error after the stream started cannot change the status: send it as an event."""
    try:
        async for chunk in frames:
            yield chunk
    except ModelyardError as exc:
        if exc.http_status >= 500:
            log.error("stream failed: %s", exc.message)
        error = {"message": exc.message, "type": exc.error_type, "param": exc.param}
        yield frame({"error": {**error, "code": exc.code}})
        yield DONE
    except Exception:  # a fault: logged in full, the client told (the audit layer recorded it)
        log.exception("stream failed")
        error = {"message": "internal error", "type": "server_error", "param": None}
        yield frame({"error": {**error, "code": "internal_error"}})
        yield DONE


def sse_response(frames: AsyncIterator[bytes], headers: dict[str, str]) -> StreamingResponse:
    return StreamingResponse(
        _guarded(frames),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers},
    )
