"""The Waves API on the wire: the request schema, the SSE client and decoder, request ids, the endpoint.

Imported on first use (:mod:`batchtts._lazy`), so naming them here costs nothing.
"""

from batchtts._lazy import lazy_exports

_EXPORTS = {
    "TtsRequest": "batchtts.api.request",
    "parse_request": "batchtts.api.request",
    "InvalidRequest": "batchtts.api.request",
    "WavesClient": "batchtts.api.client",
    "ApiKey": "batchtts.api.client",
    "AttemptOutcome": "batchtts.api.client",
    "SseDecoder": "batchtts.api.sse",
    "error_body_message": "batchtts.api.answers",
    "classify_http_error": "batchtts.api.answers",
    "request_id_for": "batchtts.api.ids",
    "new_run_token": "batchtts.api.ids",
    "DEFAULT_BASE_URL": "batchtts.api.endpoint",
    "KEY_ENV": "batchtts.api.endpoint",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
