"""Nightly reruns: which items an earlier run already did, so this one sends nothing for them.

An item's earlier result stands when the request that made it (its
fingerprint) is unchanged and its file is still the one written
(:mod:`batchtts.ledger.resume`). With ``--group-by``, a group's rows stand or
fall together: a first pass over the manifest finds the groups whose file stands
whole before any row is decided.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from batchtts.job.items import WorkItem
from batchtts.job.recorder import Recorder
from batchtts.job.shaping.assembly import Assembly
from batchtts.ledger import EarlierRuns, GroupCheck
from batchtts.manifest.planner import RowPlanner
from batchtts.manifest.readers import Row


class Reuse:
    """Decides, item by item, whether an earlier result stands; records it when it does."""

    def __init__(
        self, earlier: EarlierRuns, assembly: Assembly, recorder: Recorder, *, force: bool, redo_flagged: bool = False
    ) -> None:
        self._earlier = earlier
        #: ``--qa fail``: an earlier ok row the audio checks flagged (kept under flag or retry) is made again.
        self._redo_flagged = redo_flagged
        self._assembly = assembly
        self._recorder = recorder
        self._force = force
        self._standing: set[Hashable] = set()

    def find_standing_groups(self, rows: Iterable[Row], planner: RowPlanner) -> None:
        """--group-by reruns: the groups whose file stands whole (a first pass over the manifest)."""
        assembly = self._assembly
        if assembly.shape.group_by is None or not len(self._earlier.index) or self._force:
            return
        check = GroupCheck(self._earlier)
        for row in rows:
            for item in assembly.items(planner.plan(row)):
                group = assembly.group_key(item.row, item.variant)
                if group is None:
                    continue
                if item.problem is not None or item.planned.request is None:
                    check.add(group, row.id, None, None, None)
                    continue
                check.add(
                    group,
                    row.id,
                    item.voice,
                    assembly.row_fingerprint(row, item.request),
                    assembly.expected_path(item),
                )
        self._standing = check.standing()

    def reuse(self, item: WorkItem) -> bool:
        """Record the item's earlier result if it stands; False: it needs requests."""
        assembly = self._assembly
        group = assembly.group_key(item.row, item.variant)
        if group is not None and group not in self._standing:
            return False  # a group's rows stand or fall together
        if not self._earlier.may_know(item.row.id, item.voice):
            return False
        fingerprint = assembly.row_fingerprint(item.row, item.request)
        earlier = self._earlier.earlier_result(item.row.id, item.voice, fingerprint, assembly.expected_path(item))
        if earlier is None:
            if group is not None:  # its file was checked a moment ago: someone changed it since
                assembly.record_bad(item, f"group {group[0]!r} changed while the job ran; run it again")
                return True
            return False
        if self._redo_flagged and earlier.get("qa") and group is None:
            return False
        self._recorder.record_reused(item, earlier)
        return True
