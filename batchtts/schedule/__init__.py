"""When a request may start: the throttle (streams, pacing, 429 back-off), the start gate, retries.

Imported on first use (:mod:`batchtts._lazy`), so naming them here costs nothing.
"""

from batchtts._lazy import lazy_exports

_EXPORTS = {
    "Throttle": "batchtts.schedule.throttle",
    "ThrottleState": "batchtts.schedule.throttle",
    "StartGate": "batchtts.schedule.startgate",
    "Refusal": "batchtts.schedule.startgate",
    "RetryPolicy": "batchtts.schedule.retry",
    "retrying": "batchtts.schedule.retry",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
