"""modelyard's one error hierarchy.

::

    ModelyardError              base; never raised directly
    ├── UserError               the caller asked for something wrong; exit 1 / HTTP 4xx
    │   ├── InvalidInput        a bad name, reference, argument or request body (400)
    │   ├── Unauthorized        no key, or a wrong/revoked/expired key (401)
    │   ├── Forbidden           the key is valid but outside its scope (403)
    │   ├── NotFound            no such model, version, alias, key (404)
    │   ├── Conflict            the request clashes with current state (409)
    │   ├── Gone                the model version is retired (410)
    │   ├── TooLarge            an upload over its size limit (413)
    │   ├── UnsafeModel         intake refused a file: unsafe format, bad header (422)
    │   └── RateLimited         a rate limit, budget or queue is full (429, Retry-After)
    └── Fault                   modelyard or its environment failed; exit 3 / HTTP 5xx
        ├── StoreFault          database or blob store broken or unreachable (503)
        ├── EngineFault         the inference engine failed (500)
        └── Unavailable         temporarily not servable: blocking advisory, audit down (503)

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


class Unauthorized(UserError):
    http_status = 401
    error_type = "authentication_error"


class Forbidden(UserError):
    http_status = 403
    error_type = "permission_error"


class NotFound(UserError):
    http_status = 404


class Conflict(UserError):
    http_status = 409


class Gone(UserError):
    http_status = 410


class TooLarge(UserError):
    http_status = 413


class UnsafeModel(UserError):
    http_status = 422


class RateLimited(UserError):
    http_status = 429
    error_type = "rate_limit_error"

    def __init__(
        self, message: str, *, retry_after_s: float = 1.0, code: str | None = "rate_limit_exceeded"
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class Fault(ModelyardError):
    pass


class StoreFault(Fault):
    http_status = 503


class EngineFault(Fault):
    pass


class Unavailable(Fault):
    http_status = 503

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.retry_after_s = retry_after_s
        """When set, the gateway sends ``Retry-After`` (an engine worker restarting)."""
