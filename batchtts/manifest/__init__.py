"""Manifest rows in: CSV, Parquet and JSONL readers, the row planner, the duplicate-id table."""
