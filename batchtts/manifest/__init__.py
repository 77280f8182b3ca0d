"""Manifest rows in: CSV, Parquet and JSONL readers, the row planner, the duplicate-id table.

Imported on first use (:mod:`batchtts._lazy`), so naming them here costs nothing.
"""

from batchtts._lazy import lazy_exports

_EXPORTS = {
    "Manifest": "batchtts.manifest.readers",
    "CsvDialect": "batchtts.manifest.dialect",
    "Row": "batchtts.manifest.readers",
    "open_manifest": "batchtts.manifest.readers",
    "PlannedRow": "batchtts.manifest.planner",
    "RowPlanner": "batchtts.manifest.planner",
    "FirstRowTable": "batchtts.manifest.idtable",
    "id_key": "batchtts.manifest.idtable",
    "use_system_allocator": "batchtts.manifest.arrowpool",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
