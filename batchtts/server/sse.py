"""How the live route lays audio out as Server-Sent Events.

By default the bytes are exactly the API's, as documented in 2026: per chunk
``event: audio\ndata: {"audio": "<b64>", "done": false, "status": "206"}\n\n``
and at the end ``data: {"status": "200", "done": true}\n\n`` (no ``event:``
line). Style flags vary the layout within what the HTML standard's
event-stream grammar allows, so a client's parser can be tested against every
shape a real server (or proxy) may produce:

- ``crlf`` / ``cr``: CRLF or CR line ends instead of LF.
- ``comments``: a ``: keep-alive`` comment (and blank line) before each frame.
- ``ids``: ``id:`` on every frame, ``retry:`` on the first.
- ``nospace``: ``data:{...}`` without the optional space after the colon.
- ``multiline``: each frame's JSON split over two ``data:`` lines (valid when
  joined with ``\n``, as the standard joins them).
- ``split``: every frame written in tiny pieces, so lines and frames straddle
  network reads.
- ``odd``: audio chunk boundaries at odd byte offsets, so a 16-bit sample is
  split across two chunks.
- ``seed``: the older seed page's frames, ``{"audio": "<b64>"}`` per chunk and
  ``{"done": true}`` at the end (no ``done: false``, no ``status``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

#: Leading and trailing bytes of a frame that ``split`` cuts finest (where the syntax is).
_SPLIT_EDGE = 32
_SPLIT_EDGE_SIZES = (1, 2, 3, 5)
_SPLIT_MIDDLE_SIZE = 61
_RETRY_MS = 3000
#: 9 base64 alphabet characters: invalid even for a lenient decoder (never 1 mod 4).
_NOT_BASE64 = "not*base64!"


class SseWriter:
    """Formats the frames of one stream; keeps the per-stream ``id`` counter."""

    def __init__(self, style: frozenset[str] = frozenset()) -> None:
        self.style = style
        self.eol = "\r\n" if "crlf" in style else "\r" if "cr" in style else "\n"
        self.colon = ":" if "nospace" in style else ": "
        self._frames = 0

    def _frame(self, event: str | None, payload: dict[str, object] | str) -> bytes:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        lines: list[str] = []
        if "comments" in self.style:
            lines += [": keep-alive", ""]
        if "ids" in self.style:
            lines.append(f"id{self.colon}{self._frames + 1}")
            if self._frames == 0:
                lines.append(f"retry{self.colon}{_RETRY_MS}")
        if event is not None:
            lines.append(f"event{self.colon}{event}")
        if "multiline" in self.style and ":" in data:
            # Break after the first key's colon: JSON allows a newline there.
            head, tail = data.split(":", 1)
            lines += [f"data{self.colon}{head}:", f"data{self.colon}{tail}"]
        else:
            lines.append(f"data{self.colon}{data}")
        self._frames += 1
        return (self.eol.join(lines) + self.eol + self.eol).encode("ascii")

    def audio(self, b64: str) -> bytes:
        if "seed" in self.style:
            return self._frame("audio", {"audio": b64})
        return self._frame("audio", {"audio": b64, "done": False, "status": "206"})

    def done(self) -> bytes:
        if "seed" in self.style:
            return self._frame(None, {"done": True})
        return self._frame(None, {"status": "200", "done": True})

    def error(self, error: str, message: str) -> bytes:
        return self._frame("error", {"error": error, "message": message})

    def error_frame(self, message: str) -> bytes:
        """The older routes' error frame: a plain data frame with ``status: error``."""
        return self._frame(None, {"status": "error", "message": message})

    def bad_frame(self, broken_json: bool) -> bytes:
        """An audio frame a careful client must refuse."""
        if broken_json:
            return self._frame("audio", '{"audio": "UklGRiQAAABXQVZF')
        return self._frame("audio", {"audio": _NOT_BASE64})

    def pieces(self, frame: bytes) -> Iterator[bytes]:
        """The writes that carry ``frame``: one, or many tiny ones with ``split``."""
        if "split" not in self.style:
            yield frame
            return
        size_index, pos, end = 0, 0, len(frame)
        while pos < end:
            at_edge = pos < _SPLIT_EDGE or pos >= end - _SPLIT_EDGE
            if at_edge:
                step = _SPLIT_EDGE_SIZES[size_index % len(_SPLIT_EDGE_SIZES)]
                size_index += 1
            else:
                step = min(_SPLIT_MIDDLE_SIZE, end - _SPLIT_EDGE - pos)
            yield frame[pos : pos + step]
            pos += step


def chunk_size(total_bytes: int, samples: int, samples_per_chunk: int, bytes_per_sample: int | None) -> int:
    """Bytes per audio chunk: whole samples where the format has fixed-size samples."""
    if bytes_per_sample is not None:
        return max(1, samples_per_chunk * bytes_per_sample)
    chunks = max(1, math.ceil(samples / max(1, samples_per_chunk)))
    return max(1, math.ceil(total_bytes / chunks))


def split_audio(data: bytes | memoryview, size: int, odd: bool = False) -> list[memoryview]:
    """Cut ``data`` into chunks of ``size`` bytes.

    With ``odd``, the first chunk is one byte shorter when ``size`` is even, so
    every later boundary falls at an odd offset (inside a 16-bit sample).
    """
    view = memoryview(data)
    if not data:
        return []
    first = size - 1 if odd and size % 2 == 0 and size > 1 else size
    bounds = [0, *range(first, len(data), size)]
    return [view[a:b] for a, b in zip(bounds, [*bounds[1:], len(data)], strict=True)]
