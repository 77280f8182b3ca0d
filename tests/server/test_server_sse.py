"""The SSE layouts: the API page's exact bytes by default, and every variation the standard allows."""

from __future__ import annotations

import base64
import re

import pytest

from batchtts.server.config import SSE_STYLES, ServerConfig
from batchtts.server.sse import SseWriter, split_audio
from tests.server_support import BODY, expected_pcm, live, live_raw


def test_default_layout_is_exactly_the_api_pages(server):
    """The 2026 frames: done false and status 206 on every chunk; the end frame has no event line."""
    raw = b"".join(live_raw(server.base_url).raw_chunks)
    frames = raw.split(b"\n\n")
    assert frames[-1] == b"" and frames[-2] == b'data: {"status": "200", "done": true}'
    assert len(frames) > 3
    for frame in frames[:-2]:
        pattern = rb'event: audio\ndata: \{"audio": "[A-Za-z0-9+/]+=*", "done": false, "status": "206"\}'
        assert re.fullmatch(pattern, frame), frame[:80]


def test_the_seed_style_sends_the_older_pages_frames(local_server):
    server = local_server(sse_style=frozenset({"seed"}))
    raw = b"".join(live_raw(server.base_url).raw_chunks)
    frames = raw.split(b"\n\n")
    assert frames[-1] == b"" and frames[-2] == b'data: {"done": true}'
    for frame in frames[:-2]:
        assert re.fullmatch(rb'event: audio\ndata: \{"audio": "[A-Za-z0-9+/]+=*"\}', frame), frame[:80]


def _assert_same_audio(result, styles):
    assert result.status == 200 and result.done, styles
    assert result.audio == expected_pcm(), styles


@pytest.mark.parametrize("style", SSE_STYLES)
def test_each_style_still_parses_to_the_same_audio(local_server, style):
    server = local_server(sse_style=frozenset({style}))
    _assert_same_audio(live(server.base_url), style)


@pytest.mark.parametrize(
    "styles",
    [
        ("crlf", "comments", "ids", "nospace", "multiline", "split", "odd"),
        ("cr", "comments", "ids", "nospace", "multiline", "split", "odd"),
        ("cr", "split"),
        ("crlf", "split", "multiline"),
        ("seed", "crlf", "comments", "ids", "nospace", "multiline", "split", "odd"),
    ],
)
def test_styles_combine(local_server, styles):
    server = local_server(sse_style=frozenset(styles))
    _assert_same_audio(live(server.base_url), styles)


def _raw(local_server, *styles: str) -> tuple[bytes, list[bytes]]:
    server = local_server(sse_style=frozenset(styles))
    chunks = live_raw(server.base_url).raw_chunks
    return b"".join(chunks), chunks


def test_crlf_and_cr_change_every_line_end(local_server):
    crlf, _ = _raw(local_server, "crlf")
    assert b"\r\n\r\n" in crlf and b"\n" not in crlf.replace(b"\r\n", b"") and b"\r" not in crlf.replace(b"\r\n", b"")
    cr, _ = _raw(local_server, "cr")
    assert b"\n" not in cr and cr.endswith(b'data: {"status": "200", "done": true}\r\r')


def test_comments_ids_nospace_and_multiline_show_in_the_bytes(local_server):
    comments, _ = _raw(local_server, "comments")
    assert comments.startswith(b": keep-alive\n\n") and comments.count(b": keep-alive\n\n") > 3
    ids, _ = _raw(local_server, "ids")
    assert ids.startswith(b"id: 1\nretry: 3000\nevent: audio\n") and b"\nid: 2\nevent: audio\n" in ids
    nospace, _ = _raw(local_server, "nospace")
    assert nospace.startswith(b'event:audio\ndata:{"audio":') and b"data: " not in nospace
    multiline, _ = _raw(local_server, "multiline")
    assert multiline.startswith(b'event: audio\ndata: {"audio":\ndata:  "') and multiline.endswith(
        b'data: {"status":\ndata:  "200", "done": true}\n\n'
    )


def test_ids_are_parsed_as_event_ids(local_server):
    server = local_server(sse_style=frozenset({"ids"}))
    result = live(server.base_url)
    assert [e.id for e in result.events] == [str(i) for i in range(1, len(result.events) + 1)]
    assert result.events[0].retry == 3000


def test_split_writes_frames_in_pieces_that_straddle_lines(local_server):
    whole, chunks = _raw(local_server)
    split, pieces = _raw(local_server, "split")
    assert split == whole  # the same bytes ...
    assert len(pieces) > 10 * len(chunks)  # ... in many more network writes
    assert min(len(p) for p in pieces) == 1
    cut_inside_lines = [p for p in pieces if not p.endswith(b"\n")]
    assert len(cut_inside_lines) > len(pieces) // 2


def test_odd_puts_chunk_boundaries_inside_samples(local_server):
    server = local_server(sse_style=frozenset({"odd"}))
    result = live(server.base_url)
    sizes = [len(base64.b64decode(e.json()["audio"])) for e in result.audio_events]
    offsets = [sum(sizes[: i + 1]) for i in range(len(sizes) - 1)]
    assert offsets and all(offset % 2 == 1 for offset in offsets)
    assert result.audio == expected_pcm()


def test_split_audio_covers_every_byte_once():
    data = bytes(range(256)) * 3
    for size in (1, 2, 3, 64, 100, 1000):
        for odd in (False, True):
            chunks = split_audio(data, size, odd)
            assert b"".join(chunks) == data
            assert all(0 < len(c) <= size for c in chunks)
    assert split_audio(b"", 10) == []


def test_writer_pieces_rejoin_to_the_frame():
    writer = SseWriter(frozenset({"split", "crlf"}))
    frame = writer.audio(base64.b64encode(bytes(500)).decode())
    pieces = list(writer.pieces(frame))
    assert b"".join(pieces) == frame and len(pieces) > 20


def test_conflicting_line_ends_are_refused():
    with pytest.raises(ValueError, match="exclusive"):
        ServerConfig(sse_style=frozenset({"cr", "crlf"}))
    with pytest.raises(ValueError, match="unknown"):
        ServerConfig(sse_style=frozenset({"fancy"}))


def test_styles_apply_to_every_output_format(local_server):
    server = local_server(sse_style=frozenset({"odd", "multiline", "crlf"}))
    for output_format in ("wav", "mp3", "ulaw"):
        result = live(server.base_url, {**BODY, "output_format": output_format})
        assert result.done and len(result.audio_events) > 1
