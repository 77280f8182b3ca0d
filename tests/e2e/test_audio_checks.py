"""Audio checks (``--qa``) end to end: the local server sends whole streams of bad audio
(``silence``, ``truncate``, ``clip`` faults) and the runner flags, retakes or fails those rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.runner_support import FAST_BACKOFF, expected_samples, read_int16, run_job, write_csv

#: Twelve sentences of about the same length, one voice: the running median settles at once.
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A stitch in time saves nine, they always say.",
    "Every morning the baker opens the shop at six.",
    "Rain is falling softly on the old tin roof.",
    "The train to the coast leaves from platform two.",
    "Bring a warm coat, the evenings are getting cold.",
    "She painted the fence a bright shade of green.",
    "Our team meets every Tuesday after the lunch break.",
    "The library closes early on the first of May.",
    "Please water the plants while I am away.",
    "He found an old map folded inside the book.",
    "The river runs past the mill and into the sea.",
]
ROWS = [{"id": f"r{i:02d}", "text": text} for i, text in enumerate(TEXTS)]
#: One stream at a time, so the server's seeded fault draws fall on the same rows every run;
#: a median trusted after 3 takes; 8 kHz keeps the work small.
QA_ARGS = ["--concurrency", "1", "--qa-min-rows", "3", "--sample-rate", "8000", "--voice-id", "magnus"]
#: Seed 5 strikes rows with silence and truncation, none of the first three (before the median is trusted)
#: with truncation: checked by test_the_seed_faults_rows_after_the_median_is_trusted.
SEED = 5
FAULTS = {"silence": 0.25, "truncate": 0.25}


def samples_of(text: str) -> np.ndarray:
    return expected_samples(text=text, voice_id="magnus", sample_rate=8000)


def exact(out: Path, record: dict, text: str) -> bool:
    data, rate = read_int16(out / record["path"])
    return rate == 8000 and np.array_equal(data, samples_of(text))


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_the_seed_faults_rows_after_the_median_is_trusted(tmp_path, local_server):
    """The other tests rely on it: with --qa flag, the faulted rows are exactly the flagged ones."""
    server = local_server(faults=FAULTS, seed=SEED, fault_first=1)
    job = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url, *QA_ARGS, "--qa", "flag")
    assert job.exit_code == 0, job.output
    faults = server.stats.snapshot()["faults"]
    assert faults.get("silence", 0) >= 1 and faults.get("truncate", 0) >= 1, faults
    results = job.by_id()
    flagged = {row_id for row_id, record in results.items() if record["qa"]}
    wrong = {row["id"] for row in ROWS if not exact(job.out, results[row["id"]], row["text"])}
    assert flagged == wrong
    assert len(flagged) == faults["silence"] + faults["truncate"]
    assert not {"r00", "r01", "r02"} & {r for r in flagged if results[r]["truncated"]}


def test_flag_records_the_flags_and_keeps_the_bad_take(tmp_path, local_server):
    server = local_server(faults=FAULTS, seed=SEED, fault_first=1)
    job = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url, *QA_ARGS, "--qa", "flag")
    assert job.exit_code == 0, job.output
    results = job.results()
    silent = [r for r in results if r["silent"]]
    truncated = [r for r in results if r["truncated"]]
    assert len(silent) == server.stats.snapshot()["faults"]["silence"]
    assert len(truncated) == server.stats.snapshot()["faults"]["truncate"]
    for record in silent:
        assert record["qa"] == ["silent"] and record["status"] == "ok"
        assert record["peak_dbfs"] == -120.0 and record["rms_dbfs"] == -120.0
        data, _rate = read_int16(job.out / record["path"])
        assert not data.any()  # the silent take is the file: flag only records
        assert record["leading_silence_s"] == pytest.approx(record["audio_seconds"])
    for record in truncated:
        assert record["qa"] == ["truncated"] and record["status"] == "ok"
        assert record["seconds_per_char"] < 0.5 * np.median([r["seconds_per_char"] for r in results])
    for record in results:
        if not record["qa"]:
            assert record["silent"] is False and record["truncated"] is False and record["clipped"] is False
            assert -40 < record["rms_dbfs"] < record["peak_dbfs"] < 0
            assert record["clipped_share"] == 0.0
            assert record["attempts"] == 1
    document = summary(job.out)["qa"]
    assert document == {
        "checked": len(ROWS),
        "flagged": len(silent) + len(truncated),
        "flags": {"silent": len(silent), "truncated": len(truncated)},
        "retakes": 0,
    }
    assert f"audio checks: {len(silent) + len(truncated)} rows of {len(ROWS)} flagged" in job.output


def test_retry_keeps_the_clean_take_byte_exact(tmp_path, local_server):
    server = local_server(faults=FAULTS, seed=SEED, fault_first=1)
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    job = run_job(manifest, tmp_path / "out", server.base_url, *QA_ARGS)  # --qa retry is the default
    assert job.exit_code == 0, job.output
    faults = server.stats.snapshot()["faults"]
    bad_takes = faults["silence"] + faults["truncate"]
    results = job.by_id()
    for row in ROWS:
        record = results[row["id"]]
        assert record["status"] == "ok" and record["qa"] == []
        assert exact(job.out, record, row["text"]), row["id"]
    assert sum(r["attempts"] for r in results.values()) == len(ROWS) + bad_takes
    document = summary(job.out)
    assert document["qa"]["retakes"] == bad_takes
    assert document["retries"] == 0  # QA takes are not retries of errors
    assert f"{bad_takes} takes made again" in job.output

    # The same rows from a server with no faults: the same bytes.
    clean = run_job(manifest, tmp_path / "clean", local_server().base_url, *QA_ARGS)
    for row in ROWS:
        ours = (job.out / results[row["id"]]["path"]).read_bytes()
        assert ours == (clean.out / clean.by_id()[row["id"]]["path"]).read_bytes()


def test_retry_keeps_the_better_take_when_every_take_is_flagged(tmp_path, local_server):
    server = local_server(faults={"silence": 1.0}, seed=1)  # every take silent
    rows = ROWS[:2]
    job = run_job(write_csv(tmp_path / "m.csv", rows), tmp_path / "out", server.base_url, *QA_ARGS,
                  "--qa-attempts", "1")  # fmt: skip
    assert job.exit_code == 0, job.output  # kept, flagged: --qa retry does not fail a row
    for record in job.results():
        assert record["qa"] == ["silent"] and record["status"] == "ok"
        assert record["attempts"] == 2
    assert server.stats.snapshot()["faults"]["silence"] == 4
    assert list((job.out / "audio").iterdir()) and not list(job.out.rglob("*.part"))


def test_fail_fails_flagged_rows_and_a_rerun_makes_them_again(tmp_path, local_server):
    server = local_server(faults={"silence": 1.0}, seed=1, fault_first=1)
    rows = ROWS[:3]
    manifest = write_csv(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    job = run_job(manifest, out, server.base_url, *QA_ARGS, "--qa", "fail")
    assert job.exit_code == 1, job.output
    for record in job.results():
        assert record["status"] == "failed"
        assert record["error"] == "audio check failed: silent"
        assert record["path"] is None and record["qa"] == ["silent"]
    assert not list(out.rglob("*.wav")) and not list(out.rglob("*.part"))
    # The next run retries the failures; the server's second request of each text is clean.
    rerun = run_job(manifest, out, server.base_url, *QA_ARGS, "--qa", "fail")
    assert rerun.exit_code == 0, rerun.output
    for row in rows:
        record = rerun.by_id()[row["id"]]
        assert record["status"] == "ok" and record["qa"] == [] and exact(out, record, row["text"])


def test_resume_keeps_flagged_rows_under_flag_and_redoes_them_under_fail(tmp_path, local_server):
    server = local_server(faults={"silence": 1.0}, seed=1, fault_first=1)
    rows = ROWS[:3]
    manifest = write_csv(tmp_path / "m.csv", rows)
    out = tmp_path / "out"
    first = run_job(manifest, out, server.base_url, *QA_ARGS, "--qa", "flag")
    assert [r["qa"] for r in first.results()] == [["silent"]] * 3
    sent = server.stats.snapshot()["requests"]["live"]
    for mode in ("flag", "retry"):  # the flagged takes stand: nothing is sent
        again = run_job(manifest, out, server.base_url, *QA_ARGS, "--qa", mode)
        assert all(r["reused"] and r["qa"] == ["silent"] for r in again.results()), mode
        assert summary(out)["qa"]["flags"] == {"silent": 3}
    assert server.stats.snapshot()["requests"]["live"] == sent
    redo = run_job(manifest, out, server.base_url, *QA_ARGS, "--qa", "fail")
    assert redo.exit_code == 0, redo.output
    assert server.stats.snapshot()["requests"]["live"] == sent + 3
    for row in rows:
        record = redo.by_id()[row["id"]]
        assert record["reused"] is False and record["qa"] == [] and exact(out, record, row["text"])


def test_clipped_audio_and_the_columns_in_csv_and_jsonl_results(tmp_path, local_server):
    server = local_server(faults={"clip": 1.0}, seed=1)
    manifest = write_csv(tmp_path / "m.csv", ROWS[:2])
    for name in ("results.csv", "results.jsonl"):
        out = tmp_path / name
        job = run_job(manifest, out, server.base_url, *QA_ARGS, "--qa", "flag", "--results", str(out / name))
        assert job.exit_code == 0, job.output
        if name.endswith(".csv"):
            with (out / name).open(newline="", encoding="utf-8") as handle:
                records = list(csv.DictReader(handle))
            assert [r["qa"] for r in records] == ["clipped", "clipped"]
            assert [r["clipped"] for r in records] == ["true", "true"]
            assert [r["silent"] for r in records] == ["false", "false"]
            assert all(float(r["clipped_share"]) > 0.01 and float(r["peak_dbfs"]) == 0.0 for r in records)
        else:
            records = [json.loads(line) for line in (out / name).read_text().splitlines()]
            assert [r["qa"] for r in records] == [["clipped"], ["clipped"]]
            assert all(r["clipped"] is True and r["clipped_share"] > 0.01 for r in records)
        for column in ("seconds_per_char", "leading_silence_s", "trailing_silence_s", "rms_dbfs", "long_silence"):
            assert all(column in r for r in records)


def test_off_measures_nothing(tmp_path, local_server):
    server = local_server(faults={"silence": 1.0}, seed=1)
    job = run_job(write_csv(tmp_path / "m.csv", ROWS[:2]), tmp_path / "out", server.base_url, *QA_ARGS, "--qa", "off")
    assert job.exit_code == 0, job.output
    for record in job.results():
        assert record["qa"] is None and record["silent"] is None and record["peak_dbfs"] is None
        assert record["attempts"] == 1
    assert summary(job.out)["qa"] == {"checked": 0, "flagged": 0, "flags": {}, "retakes": 0}


def test_split_rows_get_their_parts_checked_and_joined_columns(tmp_path, local_server):
    server = local_server(faults={"silence": 0.5}, seed=2, fault_first=1)
    text = " ".join(TEXTS[:4])
    manifest = write_csv(tmp_path / "m.csv", [{"id": "long", "text": text}])
    job = run_job(manifest, tmp_path / "out", server.base_url, *QA_ARGS, "--max-chars", "60", *FAST_BACKOFF)
    assert job.exit_code == 0, job.output
    assert server.stats.snapshot()["faults"].get("silence", 0) >= 1
    (record,) = job.results()
    assert record["parts"] == 4 and record["qa"] == []
    data, _rate = read_int16(job.out / record["path"])
    parts = [samples_of(part) for part in TEXTS[:4]]
    assert np.array_equal(data, np.concatenate(parts))  # every silent part was made again
    assert record["seconds_per_char"] == pytest.approx(record["audio_seconds"] / len(text), rel=1e-3)
