"""``batchtts`` with every sync made a no-op: for attributing the runner's CPU only, never for real jobs.

The runner makes every audio file durable before renaming it into place (in
groups: one ``syncfs`` per group, see batchtts/audio/commit.py), fsyncs the folders
the files went to, and the journal in batches, so a power cut cannot leave a
half-written file under a final name. An fsync makes the calling process do the
page cache's writeback (block allocation, I/O submission); ``syncfs`` has the
kernel's flusher threads do it, as they do (later) for the floor's files. run.py
runs the runner through this script once per run, to show what the syncs still cost.

    python benchmarks/no_fsync.py run MANIFEST --out DIR ...
"""

import os
import sys

os.fsync = os.fdatasync = lambda fd: None

import batchtts.audio.commit  # noqa: E402  (after the os patch: batchtts.storage.files binds fdatasync at import)

batchtts.audio.commit._load_syncfs = lambda: lambda fd: 0

if __name__ == "__main__":
    from batchtts.cli import main

    sys.argv[0] = "batchtts"
    main()
