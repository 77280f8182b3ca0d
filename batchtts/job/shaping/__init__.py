"""How rows map to files: long texts split and joined, chapters, voice fan-out, dataset indexes.

Imported on first use (:mod:`batchtts._lazy`), so naming them here costs nothing.
"""

from batchtts._lazy import lazy_exports

_EXPORTS = {
    "Assembly": "batchtts.job.shaping.assembly",
    "ShapeOptions": "batchtts.job.shaping.options",
    "split_text": "batchtts.job.shaping.textsplit",
    "fan_out": "batchtts.job.shaping.fanout",
    "PartStore": "batchtts.job.shaping.parts",
    "write_metadata": "batchtts.job.shaping.metadata",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
