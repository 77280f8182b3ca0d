"""Where files go and how they land: safe names inside DIR, temp files, durable renames.

The job layer imports from here only; the modules behind are free to move.
"""

from batchtts.storage.files import (
    atomic_file,
    check_writable_folder,
    create_temp_file,
    fsync_folder,
    remove_stale_results_temp,
    remove_stale_temp_files,
)
from batchtts.storage.names import (
    AUDIO_DIR,
    FILE_FORMATS,
    LJSPEECH_AUDIO_DIR,
    MAX_SHARD_LEVELS,
    TEMP_NAME,
    relative_audio_path,
    resolve_inside,
)

__all__ = [
    "AUDIO_DIR",
    "FILE_FORMATS",
    "LJSPEECH_AUDIO_DIR",
    "MAX_SHARD_LEVELS",
    "TEMP_NAME",
    "atomic_file",
    "check_writable_folder",
    "create_temp_file",
    "fsync_folder",
    "relative_audio_path",
    "remove_stale_results_temp",
    "remove_stale_temp_files",
    "resolve_inside",
]
