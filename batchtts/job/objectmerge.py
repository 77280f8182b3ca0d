"""``batchtts merge s3://bucket/prefix/``: the shards that wrote one prefix, merged there.

Shards run with ``--out s3://bucket/prefix/ --shard K/N`` keep their state in
the store under ``.batchtts/shards/K-of-N/`` (journal segments, ``part.json``,
``summary.json``; :mod:`batchtts.job.objectout`). The merge takes the prefix's
lock (refused while a shard holds its part's lock: exit 2), copies each part's
state into a scratch folder laid out as a local job folder (a part's segments,
oldest first, become its journal), runs the local merge there
(:mod:`batchtts.job.merge`: the same order, pending and duplicate rules, exit
status), and uploads what it wrote (results, dataset index, summary.json),
each object whole. No audio is downloaded: the merge reads journals only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from batchtts.errors import UsageError
from batchtts.job.merge import Merged, MergeOptions, merge
from batchtts.job.objectout import (
    JOURNAL_FOLDER,
    LOCK_NAME,
    SHARDS_ROOT,
    STATE_ROOT,
    StoreLock,
    check_prefix_locks,
    shown_summary,
)
from batchtts.ledger import SUMMARY_NAME
from batchtts.ledger.resume import JOURNAL_NAME
from batchtts.storage.objects import ObjectStore, object_url

log = logging.getLogger("batchtts")


def merge_in_store(options: MergeOptions) -> Merged:
    """Merge the shard parts under ``options.out_dir`` (an ``s3://`` URL) and write the results there."""
    url = object_url(options.out_dir)
    assert url is not None
    store = ObjectStore(url)
    store.check()
    results = _results_inside(store, options.results_path)
    scratch = Path(tempfile.mkdtemp(prefix="batchtts-merge-"))
    lock = StoreLock(store, f"{STATE_ROOT}/{LOCK_NAME}")
    try:
        lock.acquire()
        try:
            check_prefix_locks(store, sharded=False)
            _pull_parts(store, scratch)
            local = dataclasses.replace(
                options, out_dir=scratch, results_path=None if results is None else scratch / results
            )
            try:
                merged = merge(local)
            except UsageError as exc:  # it names the scratch folder: name the prefix instead
                exc.args = (str(exc).replace(str(scratch), store.url.rstrip("/")),)
                raise
            _push_outputs(store, scratch)
        finally:
            lock.release()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if merged.summary.results_path is not None:
        relative = Path(merged.summary.results_path).relative_to(scratch).as_posix()
        merged.summary.results_path = Path(store.url + relative)
    # The summary event (--log-format json) names the prefix, as summary.json does, not the scratch folder.
    shown = shown_summary(json.dumps(merged.document, default=str).encode(), str(scratch), store.url)
    merged.document = json.loads(shown)
    return merged


def _results_inside(store: ObjectStore, given: Path | None) -> str | None:
    """``--results`` with an s3:// DIR: a URL inside the prefix (its relative path), or None."""
    if given is None:
        return None
    url = object_url(given)
    if url is None or not url.startswith(store.url) or url == store.url:
        raise UsageError(f"--results {given}: with an s3:// DIR give a name inside it ({store.url}results.parquet)")
    return url.removeprefix(store.url)


def _pull_parts(store: ObjectStore, scratch: Path) -> None:
    """Each part's part.json and summary.json, and its journal segments joined oldest first."""
    segments: dict[str, list[str]] = {}
    for listed in store.list(f"{SHARDS_ROOT}/"):
        relative = PurePosixPath(listed.path)
        parts = relative.relative_to(SHARDS_ROOT).parts
        if len(parts) == 2 and parts[1] in ("part.json", SUMMARY_NAME):
            found = store.read(listed.path)
            if found is not None:
                target = scratch / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(found[0])
        elif len(parts) == 3 and parts[1] == JOURNAL_FOLDER and parts[2].endswith(".jsonl"):
            segments.setdefault(parts[0], []).append(listed.path)
    for part, names in segments.items():
        folder = scratch / SHARDS_ROOT / part
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / JOURNAL_NAME, "wb") as journal:
            for name in sorted(names, key=lambda path: path.rsplit("/", 1)[-1]):  # named by UTC time: oldest first
                found = store.read(name)
                if found is None:
                    continue
                data = found[0]
                journal.write(data if not data or data.endswith(b"\n") else data + b"\n")


def _push_outputs(store: ObjectStore, scratch: Path) -> None:
    """What the merge wrote in the scratch folder (results, index, summary.json), each object whole."""
    for folder, dirs, files in os.walk(scratch):
        here = Path(folder)
        if here == scratch:
            dirs[:] = [d for d in dirs if d != STATE_ROOT]
        for name in files:
            local = here / name
            relative = local.relative_to(scratch).as_posix()
            data = local.read_bytes()
            if relative == SUMMARY_NAME:
                data = shown_summary(data, str(scratch), store.url)
            store.write(relative, data)
            log.debug("wrote %s%s", store.url, relative)
