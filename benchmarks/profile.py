"""Profile the runner with pyinstrument against the local server, at high concurrency.

    python benchmarks/profile.py [--rows N] [--concurrency C] [--latency S] [--out DIR]

The server runs in its own process (as in run.py), the runner under
pyinstrument in another; the profile goes to DIR/profile.html (open it in a
browser) and DIR/profile.txt (the call tree, then the slowest functions). What
these profiles showed, and what was fixed, is in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PYTHON, REPO, RUN_ENV, Server, fresh, write_workload


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.0, help="server latency, seconds")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    manifest, _ = write_workload(work, args.rows)
    with Server("--latency", str(args.latency)) as server:
        run = [
            "run",
            str(manifest),
            "--out",
            str(fresh(work / "profile-out")),
            "--base-url",
            server.url,
            "--concurrency",
            str(args.concurrency),
            "--sample-rate",
            "24000",
            "--file-format",
            "raw",
            "--progress",
            "off",
            "-q",
        ]
        session = out / "profile.pyisession"
        subprocess.run(
            [PYTHON, "-m", "pyinstrument", "-r", "session", "-o", str(session), "-m", "batchtts", *run],
            check=True,
            env={**os.environ, **RUN_ENV},
        )
    for renderer, name, extra in (("html", "profile.html", []), ("text", "profile.txt", ["-p", "flat=true"])):
        subprocess.run(
            [PYTHON, "-m", "pyinstrument", "--load", str(session), "-r", renderer, *extra, "-o", str(out / name)],
            check=True,
        )
    print(f"profile: {out / 'profile.html'} and {out / 'profile.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
