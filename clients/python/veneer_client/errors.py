"""Problems the API answers (RFC 9457 problem+json), one exception class per stable ``code``.

Every exception carries ``status``, ``code``, ``detail``, ``request_id`` and the problem's
extra fields (``credit_cost``, ``credit_balance``, ``job_status``, ``stage``), so a caller can
branch on the class and still read what the server said.
"""

from __future__ import annotations

from typing import Any


class VeneerError(Exception):
    """Base of every error this client raises."""


class TransportError(VeneerError):
    """The server could not be reached, or the connection broke, after every retry."""


class ApiError(VeneerError):
    """A problem+json answer. Subclasses name the stable ``code``."""

    code: str = "unknown"

    def __init__(self, status: int, problem: dict[str, Any], retry_after: float | None = None):
        self.status = status
        self.problem = problem
        self.code = problem.get("code") or type(self).code
        self.title = problem.get("title")
        self.detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        self.request_id = problem.get("request_id")
        self.credit_cost = problem.get("credit_cost")
        self.credit_balance = problem.get("credit_balance")
        self.job_status = problem.get("job_status")
        self.stage = problem.get("stage")
        self.retry_after = retry_after
        super().__init__(f"{status} {self.code}: {self.detail}")


class InvalidRequest(ApiError):
    """400: malformed JSON, a wrong type, an unknown field or query parameter."""

    code = "invalid_request"


class InvalidIdempotencyKey(ApiError):
    """400: the Idempotency-Key is empty, too long or not printable."""

    code = "invalid_idempotency_key"


class Unauthenticated(ApiError):
    """401: no key, or an unknown or revoked one."""

    code = "unauthenticated"


class InsufficientCredits(ApiError):
    """402: the organization's balance is below the cost (``credit_cost``, ``credit_balance``)."""

    code = "insufficient_credits"


class Forbidden(ApiError):
    """403: the key lacks the scope the route needs."""

    code = "forbidden"


class NotFound(ApiError):
    """404: no such resource (or another organization's)."""

    code = "not_found"


class MethodNotAllowed(ApiError):
    """405: the path exists, not with this method."""

    code = "method_not_allowed"


class Conflict(ApiError):
    """409: cancel of a job that already ended; ``job_status`` says how."""

    code = "conflict"


class JobCancelUnavailable(ApiError):
    """409: the job is in a stage that refuses cancellation (``stage``, e.g. finalizing)."""

    code = "job_cancel_unavailable"


class IdempotencyMismatch(ApiError):
    """409: the Idempotency-Key was used before with a different body."""

    code = "idempotency_mismatch"


class IdempotencyInProgress(ApiError):
    """409: the Idempotency-Key's first request is still being processed."""

    code = "idempotency_in_progress"


class PayloadTooLarge(ApiError):
    """413: the body is over the server's limit (1 MiB)."""

    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    """415: the body was not sent as application/json."""

    code = "unsupported_media_type"


class InvalidSequence(ApiError):
    """422: a sequence that is not an antibody variable domain; ``detail`` names the chain."""

    code = "invalid_sequence"


class RateLimited(ApiError):
    """429: the key's token bucket is empty; ``retry_after`` seconds until it refills."""

    code = "rate_limited"


class QuotaExceeded(ApiError):
    """429: the organization's daily write quota is used up."""

    code = "quota_exceeded"


class Internal(ApiError):
    """500: a server bug; the request id helps its operator find the log line."""

    code = "internal"


class Unavailable(ApiError):
    """503: the server is shutting down or its database is unreachable."""

    code = "unavailable"


_BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest, InvalidIdempotencyKey, Unauthenticated, InsufficientCredits, Forbidden,
        NotFound, MethodNotAllowed, Conflict, JobCancelUnavailable, IdempotencyMismatch,
        IdempotencyInProgress, PayloadTooLarge, UnsupportedMediaType, InvalidSequence,
        RateLimited, QuotaExceeded, Internal, Unavailable,
    )
}


def error_for(status: int, problem: dict[str, Any], retry_after: float | None = None) -> ApiError:
    """The exception for a problem answer: by its ``code``, else a plain ``ApiError``."""
    cls = _BY_CODE.get(str(problem.get("code")), ApiError)
    return cls(status, problem, retry_after)


class JobTimeout(VeneerError):
    """``Job.wait(timeout=...)`` ran out before the job ended; ``job`` is its last state."""

    def __init__(self, job: Any, timeout: float):
        self.job = job
        super().__init__(f"job {job.id} is still {job.status} after {timeout:g} s")
