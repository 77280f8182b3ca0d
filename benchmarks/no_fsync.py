"""``batchtts`` with ``os.fsync`` made a no-op: for attributing the runner's CPU only, never for real jobs.

The runner fsyncs every audio file before renaming it into place (and the
journal in batches), so a power cut cannot leave a half-written file under a
final name. fsync makes the calling process do the page cache's writeback (block
allocation, I/O submission), work the kernel's flusher threads would otherwise
do later, unaccounted to anyone: the floor's files are written back that way.
run.py runs the runner through this script once per run, to show how much of
its CPU is that writeback.

    python benchmarks/no_fsync.py run MANIFEST --out DIR ...
"""

import os
import sys

os.fsync = lambda fd: None  # noqa: E731

if __name__ == "__main__":
    from batchtts.cli import main

    sys.argv[0] = "batchtts"
    main()
