"""The outcome vocabulary: every stop reason has its exit status and its next step, said once."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from batchtts.cli.summary import print_summary
from batchtts.ledger import JobSummary
from batchtts.outcomes import EXIT_MEANINGS, ExitStatus, RowStatus, Stop, StopReason, exit_meaning


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_stop_reason_has_an_exit_status_and_a_next_step(reason):
    assert isinstance(reason.exit_status, ExitStatus)
    step = reason.next_step
    assert step and step != reason.value and " " in step  # a sentence, not the reason's name again


def test_limits_exit_4_and_a_rejected_key_3():
    assert {StopReason.DEADLINE.exit_status, StopReason.BUDGET.exit_status, StopReason.LIMIT.exit_status} == {4}
    assert StopReason.AUTH.exit_status == 3 and StopReason.MANIFEST.exit_status == 2
    assert StopReason.QUOTA.exit_status == 3  # a usage limit stops the job like a refused key
    assert Stop.because(StopReason.INTERRUPTED, "received SIGTERM", ExitStatus.SIGTERM).exit_status == 143


def test_every_exit_status_has_a_meaning_and_others_are_unexpected():
    assert set(EXIT_MEANINGS) == set(ExitStatus)
    assert exit_meaning(1) == "some rows failed" and exit_meaning(99) == "unexpected error"


def test_the_enums_are_their_plain_values_in_json_and_arrow():
    assert json.dumps({"status": RowStatus.OK, "exit": ExitStatus.AUTH}) == '{"status": "ok", "exit": 3}'
    assert pa.array([RowStatus.FAILED, "ok"]).to_pylist() == ["failed", "ok"]
    assert f"{StopReason.LIMIT}" == "limit" and f"{ExitStatus.SIGINT}" == "130"


def test_an_unexpected_error_stop_tells_what_to_do_next(tmp_path, capsys):
    summary = JobSummary(rows=3, ok=1, pending=2, exit_code=ExitStatus.ROWS_FAILED)
    summary.stop = Stop.because(StopReason.ERROR, "OSError: boom")
    print_summary(summary, tmp_path)
    err = capsys.readouterr().err
    assert "batchtts: stopped: OSError: boom" in err
    assert "next: error" not in err and f"next: {StopReason.ERROR.next_step}" in err
