"""What a scheduler reads: DIR/summary.json, and --log-format json on stderr."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from batchtts.cli import main
from batchtts.cli.logs import JsonProgress, configure
from batchtts.job.progress import InFlight
from batchtts.outcomes import EXIT_MEANINGS
from tests.nightly_support import summary, wait_until
from tests.runner_support import FAST_BACKOFF, TEST_KEY, run_job, write_csv

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ROWS = [
    {"id": "good", "text": "Fine words.", "voice_id": ""},
    {"id": "refused", "text": "Unknown voice.", "voice_id": "nobody"},
    {"id": "blank", "text": " ", "voice_id": ""},
]


def test_summary_json_counts_times_and_the_exit_status(tmp_path, local_server):
    server = local_server()
    job = run_job(write_csv(tmp_path / "m.csv", ROWS), tmp_path / "out", server.base_url)
    assert job.exit_code == 1
    report = summary(tmp_path / "out")
    assert report["exit_status"] == 1 and report["exit_meaning"] == EXIT_MEANINGS[1] == "some rows failed"
    assert (report["rows"], report["ok"], report["failed"], report["skipped"], report["pending"]) == (3, 1, 2, 0, 0)
    # 'refused' names a voice the catalog lacks: it fails before any request (the voice check), like 'blank'.
    assert (report["attempts"], report["retries"], report["rate_limited"]) == (1, 0, 0)
    assert report["characters_sent"] == len("Fine words.")
    assert job.by_id()["refused"]["attempts"] == 0
    assert report["audio_seconds"] == report["audio_seconds_total"] > 0
    assert ISO.fullmatch(report["started_at"]) and ISO.fullmatch(report["finished_at"])
    assert report["started_at"] <= report["finished_at"]
    assert report["results"] == str(tmp_path / "out" / "results.parquet")
    assert report["stop_reason"] is None and report["complete"] is True
    assert not list((tmp_path / "out").glob(".summary.json.*"))  # written whole: no temp file left


def test_summary_json_counts_429s_and_retries(tmp_path, local_server):
    server = local_server(faults={"503": 0.4, "429": 0.1}, seed=6)  # each 429 pauses the job 1 s: keep them few
    rows = [{"id": f"r{n}", "text": f"Row {n}."} for n in range(6)]
    job = run_job(write_csv(tmp_path / "m.csv", rows), tmp_path / "out", server.base_url, *FAST_BACKOFF,
                  "--max-attempts", "10", "--concurrency", "1")  # fmt: skip
    assert job.exit_code == 0, job.output
    report = summary(tmp_path / "out")
    responses = server.stats.snapshot()["responses"]
    assert responses.get("429", 0) >= 1 and responses.get("503", 0) >= 1
    assert report["rate_limited"] == responses["429"]
    assert report["retries"] == responses["429"] + responses["503"] == report["attempts"] - 6


def test_json_logs_are_one_object_per_line_and_never_show_the_key(tmp_path, local_server):
    server = local_server()
    manifest = write_csv(tmp_path / "m.csv", ROWS)
    argv = ["run", str(manifest), "--out", str(tmp_path / "out"), "--base-url", server.base_url,
            "--log-format", "json", "-vv", "--progress", "off"]  # fmt: skip
    result = CliRunner().invoke(main, argv, env={"SMALLEST_API_KEY": TEST_KEY, "BATCHTTS_BASE_URL": ""})
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "event", "message"} <= set(event) for event in events)
    by_event = {event["event"]: event for event in events}
    assert by_event["row_ok"]["row_id"] == "good"
    assert by_event["row_failed"]["row_id"] in {"refused", "blank"}
    final = by_event["summary"]
    assert (final["ok"], final["failed"], final["exit_status"]) == (1, 2, 1)
    assert TEST_KEY not in result.output


def test_json_progress_events_come_on_a_clock_with_what_is_in_flight(capsys):
    log = configure("json")
    progress = JsonProgress(3, log, interval=0.02)  # on a clock, not on row completions
    progress.watch(lambda: InFlight(streams=1, concurrency=4, rate_per_second=None, audio_seconds=2.5))
    progress.row_finished("ok")
    progress.row_finished("skipped")
    lines: list[str] = []

    def two_events() -> bool:
        lines.extend(capsys.readouterr().err.splitlines())
        return len(lines) >= 2

    progress.start()
    try:
        wait_until(two_events, what="two progress events")
    finally:
        progress.stop()
        configure("text")
    events = [json.loads(line) for line in lines]
    assert {e["event"] for e in events} == {"progress"}
    assert (events[-1]["done"], events[-1]["total"], events[-1]["ok"], events[-1]["skipped"]) == (2, 3, 1, 1)
    assert (events[-1]["in_flight"], events[-1]["concurrency"], events[-1]["audio_seconds"]) == (1, 4, 2.5)


def test_the_progress_shows_the_cap_auto_has_reached(capsys):
    from batchtts.cli.progress import PlainProgress

    def live() -> InFlight:
        return InFlight(streams=1, concurrency=2, rate_per_second=None, audio_seconds=0.0, auto=True)

    log = configure("json")
    progress = JsonProgress(3, log, interval=10.0)
    progress.watch(live)
    progress.row_finished("ok")
    progress._print()  # what the clock prints
    event = json.loads(capsys.readouterr().err.splitlines()[-1])
    assert (event["in_flight"], event["concurrency"], event["auto"]) == (1, 2, True)
    configure("text")
    plain = PlainProgress(3, interval=10.0)
    plain.watch(live)
    plain.row_finished("ok")
    plain._print()
    assert "streaming 1/2 (auto), pace unpaced" in capsys.readouterr().err


def test_damage_deep_in_the_manifest_exits_2_with_results_and_summary(tmp_path, local_server):
    server = local_server()
    manifest = tmp_path / "m.jsonl"
    good = "".join(json.dumps({"id": f"r{n}", "text": f"Row {n}."}) + "\n" for n in range(1, 1201))
    manifest.write_text(good + "this line is not JSON\n", encoding="utf-8")  # past the 1,000-record sample
    job = run_job(manifest, tmp_path / "out", server.base_url, "--limit", "2")
    assert job.exit_code == 2
    assert "line 1201 is not valid JSON" in job.output and "Traceback" not in job.output
    report = summary(tmp_path / "out")
    assert (report["exit_status"], report["stop_reason"], report["complete"]) == (2, "manifest", False)
    assert (report["ok"], report["pending"], report["rows"]) == (2, 1198, 1200)
    assert len(job.results()) == 1200  # the rows before the damage
