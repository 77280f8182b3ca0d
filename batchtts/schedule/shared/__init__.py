"""Limits shared by every process of one account over Redis (``--limits-url``).

The same schedule as :mod:`batchtts.schedule.throttle`, kept in Redis instead
of in the process: the stream cap (leases that expire when their holder
dies), the pace (GCRA on Redis' clock) and its window guard, the adaptive
state (AIMD, Retry-After pauses, the ``--concurrency auto`` probe).
Imported on first use (:mod:`batchtts._lazy`).
"""

from batchtts._lazy import lazy_exports

_EXPORTS = {
    "SharedThrottle": "batchtts.schedule.shared.throttle",
    "shared_throttle": "batchtts.schedule.shared.throttle",
    "SharedLimits": "batchtts.schedule.shared.store",
    "LimitsUnreachable": "batchtts.schedule.shared.store",
    "check_limits_url": "batchtts.schedule.shared.address",
    "masked_url": "batchtts.schedule.shared.address",
    "limits_namespace": "batchtts.schedule.shared.address",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
