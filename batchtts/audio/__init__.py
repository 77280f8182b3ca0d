"""Audio out: the streaming sink and its codecs, the group commit, joins."""
