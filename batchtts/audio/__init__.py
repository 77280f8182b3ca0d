"""Audio out: the streaming sink and its codecs, the group commit, joins.

The job layer imports from here only; the modules behind are free to move.
"""

from batchtts.audio.commit import GroupCommit
from batchtts.audio.join import Joined, JoinError, join_files
from batchtts.audio.sink import FILE_FORMATS, AudioSink, SinkResult
from batchtts.storage.files import remove_stale_temp_files

__all__ = [
    "FILE_FORMATS",
    "AudioSink",
    "GroupCommit",
    "JoinError",
    "Joined",
    "SinkResult",
    "join_files",
    "remove_stale_temp_files",
]
