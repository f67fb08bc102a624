"""What the sync and async clients share: how a call is built, when it may be retried and how
an answer becomes a value or an exception. Only the sending differs between the two."""

from __future__ import annotations

import os
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from . import errors

DEFAULT_URL = "http://127.0.0.1:8080"
USER_AGENT = "veneer-client-python/0.1.0"


@dataclass
class Call:
    """One API request. ``repeatable``: the server would do nothing new if it were sent twice
    (a read, or a write carrying an Idempotency-Key), so a broken connection may be retried."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    repeatable: bool = False
    parse: Callable[[Any], Any] = lambda body: body
    #: The answer is a file: its bytes, not JSON.
    raw: bool = False

    @classmethod
    def get(cls, path: str, parse: Callable[[Any], Any], **params: Any) -> "Call":
        clean = {k: v for k, v in params.items() if v is not None}
        return cls("GET", path, params=clean or None, repeatable=True, parse=parse)

    @classmethod
    def write(cls, method: str, path: str, body: Any, parse: Callable[[Any], Any],
              idempotency_key: str | None = None) -> "Call":
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return cls(method, path, json=body, headers=headers, repeatable=bool(idempotency_key), parse=parse)


def new_idempotency_key() -> str:
    """A fresh key for one logical request; every retry of that request reuses it."""
    return f"py-{uuid.uuid4()}"


class Config:
    """Connection settings: the base URL and key (or ``VENEER_URL`` / ``VENEER_API_KEY``),
    a per-request timeout, and how many times a retryable failure is tried again."""

    def __init__(self, base_url: str | None, api_key: str | None, timeout: float,
                 max_retries: int, backoff: float, max_backoff: float):
        self.base_url = (base_url or os.environ.get("VENEER_URL") or DEFAULT_URL).rstrip("/")
        key = api_key or os.environ.get("VENEER_API_KEY")
        if not key:
            raise ValueError("no API key: pass api_key=... or set VENEER_API_KEY")
        self.api_key = key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT,
                "Accept": "application/json, application/problem+json"}

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before retry ``attempt`` (1-based): the server's Retry-After when it gave
        one, else exponential backoff with jitter."""
        if retry_after is not None:
            return max(retry_after, 0.05)
        base = min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)
        return base * (0.5 + random.random() / 2)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def retryable_status(status: int) -> bool:
    """429 and 503 are answered before the request does anything, so any call may be resent."""
    return status in (429, 503)


def result(call: Call, response: httpx.Response) -> Any:
    """The parsed value of a 2xx answer, or the exception for a problem."""
    if call.raw and response.is_success:
        return response.content
    if response.status_code == 204 or not response.content:
        body: Any = None
    else:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text}
    if response.is_success:
        return call.parse(body)
    problem = body if isinstance(body, dict) else {"detail": str(body)}
    raise errors.error_for(response.status_code, problem, retry_after(response))


TRANSPORT_ERRORS = (httpx.TransportError,)
