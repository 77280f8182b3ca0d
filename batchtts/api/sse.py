"""Server-Sent Events parsed from bytes, as the HTML standard's event-stream grammar says.

Why not httpx-sse: it decodes every network read to ``str`` and splits lines
on text, then hands each event over as text, which the client then encodes
again for base64. Audio frames are large (6 to 12 KB of base64 each) and many,
so this decoder stays on bytes end to end: it splits lines with ``bytes.split``
(a fast path when a read holds no CR), never copies a line that a read holds
whole, and gives each event's data as bytes, ready for the JSON parser.

What it implements (https://html.spec.whatwg.org/multipage/server-sent-events.html):
lines end in CRLF, LF or CR, and any of them may be split across reads (a CR
at the end of a read waits for the next one); a leading byte-order mark is
ignored; ``:`` starts a comment; one space after the field's colon is
dropped; ``data`` lines join with LF; ``id`` (unless it holds NUL) and
``retry`` (ASCII digits only) are kept; unknown fields are ignored; a blank
line dispatches the event. Unlike the standard, a block with an ``event``
field and no data is still dispatched, so a bare ``event: error`` cannot go
unnoticed; a block of only ``id``/``retry``/comments is not.
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event. ``event`` is ``""`` when the block named none (the standard's "message")."""

    event: str
    data: bytes
    id: str
    retry: int | None


class SseDecoder:
    """Feed it the bytes of a stream as they arrive; it returns the events they complete.

    ``decoder.feed(chunk)`` returns the (possibly empty) list of events whose
    blank line is in ``chunk``; ``decoder.flush()`` at the end of the stream
    returns nothing (an event without its blank line is not dispatched, as the
    standard says) but reports, through ``pending``, whether bytes were left over.
    """

    __slots__ = ("_data", "_event", "_has_fields", "_id", "_parts", "_retry", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._parts: list[bytes] = []  # the current line, not yet ended
        self._skip_lf = False  # the last read ended in CR: a leading LF belongs to it
        self._started = False  # past the optional BOM
        self._event = b""
        self._data: list[bytes] = []
        self._id = ""
        self._retry: int | None = None
        self._has_fields = False  # an event or data field since the last dispatch

    @property
    def pending(self) -> bool:
        """Whether a line or an event was cut off by the end of the stream."""
        return bool(self._parts) or self._has_fields

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if not chunk:
            return []
        if not self._started:
            head = b"".join(self._parts) + chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._parts = [head]  # could still be a BOM: wait for more
                return []
            self._parts = []
            self._started = True
            chunk = head[len(_BOM) :] if head.startswith(_BOM) else head
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                self._skip_lf = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        elif b"\n" not in chunk:
            self._parts.append(chunk)
            return []
        lines = chunk.split(b"\n")
        rest = lines.pop()  # after the last line end: the start of the next line
        if self._parts:
            self._parts.append(lines[0])
            lines[0] = b"".join(self._parts)
        self._parts = [rest] if rest else []
        events: list[SseEvent] = []
        for line in lines:
            if line:
                self._field(line)
            elif self._has_fields:
                events.append(self._dispatch())
        return events

    def _field(self, line: bytes) -> None:
        if line[0] == 0x3A:  # ":" a comment
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._has_fields = True
        elif name == b"event":
            self._event = value
            self._has_fields = True
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit() and value.isascii():
            self._retry = int(value)

    def _dispatch(self) -> SseEvent:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = SseEvent(self._event.decode("utf-8", "replace"), data, self._id, self._retry)
        self._event = b""
        self._data = []
        self._retry = None  # the reconnection time applies once; the id stays (the standard's last event id)
        self._has_fields = False
        return event
