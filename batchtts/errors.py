"""Every exception batchtts raises on purpose, in one hierarchy.

The runner decides what to do with a failure by its class alone: a
:class:`TransientError` is retried, a :class:`RequestRejected` fails its row,
an :class:`AccessDenied` (a refused key, a usage limit reached) stops the whole job, a :class:`ManifestError` stops it
before any request, a :class:`StorageError` fails its row (the file could not be written).
"""

from __future__ import annotations


class BatchTTSError(Exception):
    """Base of every batchtts error."""


class UsageError(BatchTTSError):
    """Bad options or environment (exit 2)."""


class ManifestError(BatchTTSError):
    """The manifest cannot be read as a whole (exit 2, before any request)."""


class AttemptError(BatchTTSError):
    """One synthesis attempt failed.

    ``http_status`` is the answer's status when there was one; ``retry_after``
    is the server's Retry-After in seconds when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
        server_request_id: str | None = None,
        server_session_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after
        self.server_request_id = server_request_id
        self.server_session_id = server_session_id


class TransientError(AttemptError):
    """Worth another try: 408, 409, 429, 5xx, network trouble, incomplete streams."""


class RateLimited(TransientError):
    """429: the account's rate or concurrency limit pushed back."""


class ServerError(TransientError):
    """408, 409 or 5xx."""


class NetworkError(TransientError):
    """Connect failure, reset, or a read that stalled past the idle timeout."""


class StreamIncomplete(TransientError):
    """The stream ended, was cut, sent an error event or an undecodable frame."""


class RequestRejected(AttemptError):
    """A 4xx other than 401/403/408/409/429: the row itself is wrong; never retried."""


class AccessDenied(AttemptError):
    """401/403: the API will not serve this key now; the job stops at once (exit 3), nothing more is sent."""


class AuthRejected(AccessDenied):
    """401, or a 403 for a key of another workspace or product: the key was refused."""


class UsageLimitReached(AccessDenied):
    """403 "trial or workspace usage limit reached": the key is fine, the account may not do more now."""


class VoiceCatalogUnavailable(BatchTTSError):
    """The voice catalog could not be read (any error, a non-200, a body not shaped like the catalog):
    the job goes on without checking voices before the first request."""


class AudioCheckFailed(AttemptError):
    """``--qa fail``: the audio came whole but the checks flagged it (silent, truncated, ...): the row fails."""


class StorageError(AttemptError):
    """The audio arrived but could not be stored (disk full, I/O error): the row fails; not retried."""
