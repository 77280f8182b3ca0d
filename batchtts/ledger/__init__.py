"""What happened to each row: the journal, the resume index, the results manifest, summary.json.

The job layer imports from here only; the modules behind are free to move.
"""

from batchtts.ledger.entry import (
    LOUDNESS_KEY,
    OPTIONAL_COLUMNS,
    VARIANT_KEY,
    RowResult,
    utc_now_iso,
)
from batchtts.ledger.journal import Journal, final_entries
from batchtts.ledger.resume import EarlierRuns, GroupCheck, file_stamp, group_fingerprint, row_fingerprint
from batchtts.ledger.summary import SUMMARY_NAME, FailedRow, JobSummary, summary_document, write_summary_json
from batchtts.ledger.writers import results_format, write_journal_results

__all__ = [
    "LOUDNESS_KEY",
    "OPTIONAL_COLUMNS",
    "SUMMARY_NAME",
    "VARIANT_KEY",
    "EarlierRuns",
    "FailedRow",
    "GroupCheck",
    "JobSummary",
    "Journal",
    "RowResult",
    "file_stamp",
    "final_entries",
    "group_fingerprint",
    "results_format",
    "row_fingerprint",
    "summary_document",
    "utc_now_iso",
    "write_journal_results",
    "write_summary_json",
]
