"""``batchtts run --job FILE.toml``: options from a file, the command line on top."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from batchtts.cli import main
from batchtts.cli.jobfile import TABLES, load_job_file, option_keys
from batchtts.cli.run import run as run_command
from tests.nightly_support import REPO, assert_file_exact, starts, summary
from tests.runner_support import TEST_KEY, write_csv

ROWS = [{"id": "a", "text": "From a job file."}, {"id": "b", "text": "Second row."}, {"id": "c", "text": "Third."}]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    environ = {"SMALLEST_API_KEY": TEST_KEY, "BATCHTTS_BASE_URL": "", **(env or {})}
    return CliRunner().invoke(main, ["run", *args], env=environ, catch_exceptions=False)


def write_job(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_job_file_sets_the_options_and_its_paths_start_at_its_folder(tmp_path, local_server, monkeypatch):
    server = local_server()
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    write_csv(jobs / "lines.csv", ROWS)
    job = write_job(
        jobs / "night.toml",
        f"""
manifest = "lines.csv"
out = "../out"
file-format = "wav"
[request]
voice-id = "emily"
sample-rate = 16000
speed = 1.25
[api]
base-url = "{server.base_url}"
[limits]
concurrency = 2
max-attempts = 2
[log]
progress = "off"
""",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the job's paths do not depend on the working directory
    result = invoke("--job", str(job))
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    records = {r["id"]: r for r in pq.read_table(out / "results.parquet").to_pylist()}
    assert sorted(records) == ["a", "b", "c"]
    assert {r["voice_id"] for r in records.values()} == {"emily"}
    assert {r["sample_rate"] for r in records.values()} == {16000}
    assert_file_exact(out, records["a"], "From a job file.", voice_id="emily", sample_rate=16000, speed=1.25)
    assert not (elsewhere / "out").exists()


def test_the_command_line_overrides_the_job_file(tmp_path, local_server):
    server = local_server()
    write_csv(tmp_path / "lines.csv", ROWS)
    job = write_job(
        tmp_path / "job.toml",
        f"""
manifest = "lines.csv"
out = "out-from-job"
base-url = "{server.base_url}"
progress = "off"
[request]
voice-id = "emily"
sample-rate = 16000
[limits]
limit = 1
""",
    )
    other = write_csv(tmp_path / "other.csv", ROWS[:2])
    result = invoke("--job", str(job), str(other), "--out", str(tmp_path / "out-typed"),
                    "--sample-rate", "8000", "--limit", "5")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out-from-job").exists()
    records = pq.read_table(tmp_path / "out-typed" / "results.parquet").to_pylist()
    assert [r["id"] for r in records] == ["a", "b"]  # the typed MANIFEST, not the job's
    assert {(r["voice_id"], r["sample_rate"], r["status"]) for r in records} == {("emily", 8000, "ok")}
    assert starts(server) == 2  # --limit 5 won over the job's limit = 1


def test_the_job_file_wins_over_an_environment_variable(tmp_path, local_server):
    server = local_server()
    write_csv(tmp_path / "lines.csv", ROWS[:1])
    job = write_job(tmp_path / "job.toml", f'manifest = "lines.csv"\nout = "out"\nbase-url = "{server.base_url}"\n')
    result = invoke("--job", str(job), "--progress", "off", env={"BATCHTTS_BASE_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 0, result.output
    assert starts(server) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('voiceid = "emily"', "voiceid: no such option (did you mean 'voice-id'?)"),
        ('[limits]\nvoice-id = "emily"', "'voice-id' goes in the [request] table, not in [limits]"),
        ('[request]\nout = "x"', "'out' goes at the top level, not in [request]"),
        ("[voices]\nx = 1", "[voices]: no such table"),
        ("[request]\nspeed = 3", "speed: 3.0 is not in the range 0.5<=x<=2.0"),
        ('deadline = "soon"', "deadline: 'soon' is not a deadline"),
        ('[limits]\nconcurrency = "lots"', "concurrency: 'lots' is not a concurrency"),
        ("[limits]\nconcurrency = 0", "concurrency: 0 streams is not within 1 to 1024"),
        ("[limits]\nmax-concurrency = 0", "max-concurrency: 0 is not in the range"),
        ('api-key = "sk-123"', "never holds the key"),
        ('job = "other.toml"', "cannot name another job file"),
        ('voice-id = "a"\nvoice_id = "b"', "voice-id is set twice"),
        ("manifest = [", "not valid TOML"),
    ],
)
def test_a_bad_job_file_exits_2_naming_the_file_and_the_key(tmp_path, content, message):
    job = write_job(tmp_path / "bad.toml", f'manifest = "m.csv"\nout = "out"\n{content}\n')
    result = invoke("--job", str(job))
    assert result.exit_code == 2
    assert f"job file {job}" in result.output
    assert message in result.output


@pytest.mark.parametrize(
    ("limits", "streams"),
    [('concurrency = "auto"\nmax-concurrency = 3', 3), ("concurrency = 2", 2), ('concurrency = "4"', 4)],
)
def test_a_job_file_sets_the_concurrency(tmp_path, local_server, limits, streams):
    server = local_server(latency=0.05)
    write_csv(tmp_path / "m.csv", [{"id": f"r{i}", "text": f"Line {i}."} for i in range(12)])
    job = write_job(tmp_path / "job.toml", f'manifest = "m.csv"\nout = "out"\n[limits]\n{limits}\n')
    result = invoke("--job", str(job), "--base-url", server.base_url, "--progress", "off")
    assert result.exit_code == 0, result.output
    assert server.stats.snapshot()["max_concurrent_streams"] == streams


def test_manifest_and_out_come_from_the_command_line_or_the_job(tmp_path):
    result = invoke("--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "missing MANIFEST" in result.output
    result = invoke("--job", str(tmp_path / "nowhere.toml"))
    assert result.exit_code == 2 and "no such file" in result.output
    write_job(tmp_path / "j.toml", 'manifest = "m.csv"\n')
    result = invoke("--job", str(tmp_path / "j.toml"))
    assert result.exit_code == 2 and "missing --out" in result.output


def test_every_option_has_a_job_file_key_and_the_tables_name_real_options():
    keys = option_keys(run_command)
    for table, names in TABLES.items():
        for name in names:
            assert name in keys, f"[{table}] {name}"
    assert {"manifest", "out", "results", "deadline", "max-characters", "limit", "grace", "force",
            "retry-failed", "log-format"} <= set(keys)  # fmt: skip


@pytest.mark.parametrize("name", ["demo", "nightly-dataset", "audiobook"])
def test_the_example_jobs_load_and_their_manifests_exist(name):
    job = load_job_file(REPO / "jobs" / f"{name}.toml", run_command)
    assert (REPO / "jobs" / job.values["manifest"]).is_file()
    assert job.values["out"].startswith("../")  # outputs land next to jobs/, not inside it


def test_the_demo_job_runs_as_make_demo_runs_it(tmp_path):
    """`make demo` is `batchtts run --job jobs/demo.toml`: here with the synthetic engine and a temp folder."""
    result = invoke("--job", str(REPO / "jobs" / "demo.toml"), "--out", str(tmp_path / "demo"),
                    "--engine", "synthetic", "--progress", "off", "--concurrency", "20")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "using the bundled local server" in result.output
    report = summary(tmp_path / "demo")
    assert report["ok"] == report["rows"] == 20 and report["failed"] == 0


@pytest.mark.parametrize("name", ["nightly-dataset", "audiobook"])
def test_the_other_example_jobs_run_against_the_local_server(tmp_path, local_server, name):
    server = local_server()
    jobs = tmp_path / "jobs"
    shutil.copytree(REPO / "jobs", jobs)
    result = invoke("--job", str(jobs / f"{name}.toml"), "--base-url", server.base_url, "--log-format", "text",
                    "--progress", "off", "--rate", "1000/s")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = tmp_path / load_job_file(jobs / f"{name}.toml", run_command).values["out"].removeprefix("../")
    report = summary(out)
    assert report["ok"] == report["rows"] and report["failed"] == 0
    flac = sorted(path.name for path in (out / "audio").glob("*.flac"))
    assert flac == (["ch01.flac", "ch02.flac", "ch03.flac"] if name == "audiobook" else
                    [f"utt-{n:04d}.flac" for n in range(1, 13)])  # fmt: skip
    # A finished job's rerun sends nothing.
    sent = starts(server)
    again = invoke("--job", str(jobs / f"{name}.toml"), "--base-url", server.base_url, "--progress", "off",
                   "--rate", "1000/s")  # fmt: skip
    assert again.exit_code == 0 and starts(server) == sent
