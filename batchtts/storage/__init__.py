"""Where files go and how they land: safe names inside DIR, temp files, durable renames.

The job layer imports from here only; the modules behind are free to move.
"""

from batchtts.storage.names import (
    AUDIO_DIR,
    LJSPEECH_AUDIO_DIR,
    MAX_SHARD_LEVELS,
    TEMP_NAME,
    atomic_file,
    relative_audio_path,
    resolve_inside,
)

__all__ = [
    "AUDIO_DIR",
    "LJSPEECH_AUDIO_DIR",
    "MAX_SHARD_LEVELS",
    "TEMP_NAME",
    "atomic_file",
    "relative_audio_path",
    "resolve_inside",
]
