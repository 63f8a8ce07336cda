"""modelyard's one error hierarchy.

::

    ModelyardError              base; never raised directly
    ├── UserError               the caller asked for something wrong; exit 1 / HTTP 4xx
    │   ├── InvalidInput        a bad name, reference, argument or request body (400)
    │   ├── NotFound            no such model, version, alias, key (404)
    │   ├── Conflict            the request clashes with current state (409)
    │   └── UnsafeModel         intake refused a file: unsafe format, bad header (422)
    └── Fault                   modelyard or its environment failed; exit 3 / HTTP 5xx
        ├── StoreFault          database or blob store broken or unreachable (503)
        └── EngineFault         the inference engine failed (500)

Errors are translated once, at the boundary: the CLI prints ``error: <message>`` and
exits with ``exit_code``; the gateway answers OpenAI's error JSON with ``http_status``.
"""

from __future__ import annotations


class ModelyardError(Exception):
    exit_code = 3
    http_status = 500
    error_type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class UserError(ModelyardError):
    exit_code = 1
    http_status = 400
    error_type = "invalid_request_error"


class InvalidInput(UserError):
    pass


class NotFound(UserError):
    http_status = 404


class Conflict(UserError):
    http_status = 409


class UnsafeModel(UserError):
    http_status = 422


class Fault(ModelyardError):
    pass


class StoreFault(Fault):
    http_status = 503


class EngineFault(Fault):
    pass
