"""What the API answered when it was not audio: error bodies as sentences, Retry-After, the error class.

The client (:mod:`batchtts.api.client`) streams; this module reads the other
answers: a 4xx/5xx body in any of the documented shapes, a ``Retry-After``
header, a network failure with its host and reason. The job decides by the
error's class alone (:mod:`batchtts.errors`).
"""

from __future__ import annotations

import email.utils
import json
import re
import socket
from datetime import UTC, datetime

import httpx

from batchtts.errors import (
    AttemptError,
    AuthRejected,
    RateLimited,
    RequestRejected,
    ServerError,
    UsageLimitReached,
)


def describe_network_error(exc: httpx.TransportError, url: str) -> str:
    """One sentence with the host and the reason: ``cannot connect to api.smallest.ai:443: name
    resolution failed``, not ``network error (ConnectError)``."""
    parsed = httpx.URL(url)
    where = f"{parsed.host}:{parsed.port or (443 if parsed.scheme == 'https' else 80)}"
    cause: BaseException | None = exc
    reason = ""
    while cause is not None:  # the OS's own error is at the end of httpx's and httpcore's chain
        if isinstance(cause, socket.gaierror):
            reason = "name resolution failed"
            break
        if isinstance(cause, ConnectionRefusedError):
            reason = "connection refused (nothing listens there)"
            break
        if isinstance(cause, OSError) and cause.strerror:
            reason = cause.strerror.lower()
            break
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectTimeout):
        return f"cannot connect to {where}: timed out"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out: {where} sent nothing for too long ({type(exc).__name__}; see --timeout)"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {where}: {reason or str(exc) or 'connection failed'}"
    return f"network error with {where}: {reason or str(exc) or type(exc).__name__}"


def error_body_message(data: str | bytes) -> str:
    """An API error body as a sentence, never a JSON dump.

    The shapes the API answers with (``waves-api-2026.md``):

    - ``{"error": "InvalidRequest", "message": "The 'text' field is required."}``: the message;
    - a Zod-style list, ``{"error": [{"code": ..., "path": ["voice_id"], "message": "Invalid Voice ID"}, ...]}``:
      ``voice_id: Invalid Voice ID``, several issues joined with ``; ``;
    - plan-gated, ``{"status": false, "errors": ["... please upgrade ..."]}``: the errors, joined;
    - ``{"status": "error", "message": ...}`` (older routes' frames): the message.

    Anything else: a short excerpt of the body as text.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        said = _said(payload)
        if said:
            return said
    excerpt = " ".join(text.split())[:200]
    return excerpt or "no message"


_MAX_ISSUES = 5


def _said(payload: dict[str, object]) -> str | None:
    """The human part of a JSON error object, or None when it has none we know."""
    error, message, errors = payload.get("error"), payload.get("message"), payload.get("errors")
    if isinstance(error, list) and error:
        issues = [_issue(item) for item in error[:_MAX_ISSUES]]
        more = f"; and {len(error) - _MAX_ISSUES} more" if len(error) > _MAX_ISSUES else ""
        return "; ".join(issue for issue in issues if issue) + more or None
    if isinstance(errors, list) and errors:
        return "; ".join(_one_line(item) for item in errors[:_MAX_ISSUES] if item is not None) or None
    if isinstance(message, str) and message.strip():
        return _one_line(message)
    if isinstance(error, dict):
        return _said(error)
    if isinstance(error, str) and error.strip():
        return _one_line(error)
    return None


def _issue(item: object) -> str:
    """One Zod issue: ``path: message`` (a nested path as ``a.0.b``)."""
    if not isinstance(item, dict):
        return _one_line(item)
    path = item.get("path")
    where = ".".join(str(part) for part in path) if isinstance(path, list) else ""
    message = item.get("message")
    what = _one_line(message) if message is not None else str(item.get("code") or "invalid")
    return f"{where}: {what}" if where else what


def _one_line(value: object) -> str:
    return " ".join(str(value).split())[:300]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


#: What a 403 body says when the account hit its trial or workspace usage limit (the body is not documented;
#: the error reference names the case "trial or workspace usage limit reached").
_USAGE_LIMIT = re.compile(r"usage limit|limit reached|quota|credits?\b", re.IGNORECASE)


def classify_http_error(response: httpx.Response, body: bytes, server_request_id: str | None) -> AttemptError:
    """Map a non-200 answer to the error class that decides what happens next.

    A 403 is either the account's usage limit (:class:`UsageLimitReached`, when
    the body says so) or a key that may not do this, one of another workspace
    or product (:class:`AuthRejected`); the message says which.
    """
    status = response.status_code
    said = error_body_message(body)
    message = f"HTTP {status}: {said}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    kind: type[AttemptError]
    if status == 403 and _USAGE_LIMIT.search(said):
        kind = UsageLimitReached
        message = f"HTTP 403: the account's usage limit is reached: {said}"
    elif status == 403:
        kind = AuthRejected
        message = f"HTTP 403: the key may not do this (a key of another workspace or product?): {said}"
    elif status == 401:
        kind = AuthRejected
    elif status == 429:
        kind = RateLimited
    elif status in (408, 409) or status >= 500:
        kind = ServerError
    else:
        kind = RequestRejected
    return kind(message, http_status=status, retry_after=retry_after, server_request_id=server_request_id)
