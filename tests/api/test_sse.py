"""The byte-level SSE decoder: the HTML standard's grammar, whatever the network reads look like."""

from __future__ import annotations

import httpx_sse
from hypothesis import given
from hypothesis import strategies as st

from batchtts.api.sse import SseDecoder, SseEvent


def decode(*chunks: bytes) -> list[SseEvent]:
    decoder = SseDecoder()
    events: list[SseEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events


def test_the_api_pages_frames():
    stream = b'event: audio\ndata: {"audio": "AAEC"}\n\ndata: {"done": true}\n\n'
    assert decode(stream) == [
        SseEvent("audio", b'{"audio": "AAEC"}', "", None),
        SseEvent("", b'{"done": true}', "", None),
    ]


def test_every_line_ending_and_splits_inside_crlf():
    for eol in (b"\n", b"\r\n", b"\r"):
        stream = b"event: audio" + eol + b"data: x" + eol + eol + b"data: y" + eol + eol
        whole = decode(stream)
        assert [(e.event, e.data) for e in whole] == [("audio", b"x"), ("", b"y")], eol
        for cut in range(len(stream) + 1):
            assert decode(stream[:cut], stream[cut:]) == whole, (eol, cut)
        assert decode(*(stream[i : i + 1] for i in range(len(stream)))) == whole


def test_a_cr_at_the_end_of_a_read_then_lf_is_one_line_end():
    # CR ends the read; the LF that follows in the next read must not make an empty line (a dispatch).
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [SseEvent("", b"a\nb", "", None)]


def test_comments_ids_retry_nospace_multiline_and_unknown_fields():
    stream = (
        b': keep-alive\n\nid: 7\nretry: 3000\nevent:audio\ndata:{"a":\ndata: 1}\nfoo: bar\n\nid\nretry: soon\ndata\n\n'
    )
    first, second = decode(stream)
    assert first == SseEvent("audio", b'{"a":\n1}', "7", 3000)
    # "id" with no colon sets an empty id; a non-numeric retry is ignored; "data" alone is an empty data line.
    assert second == SseEvent("", b"", "", None)


def test_an_id_holding_nul_is_ignored_and_the_last_id_persists():
    events = decode(b"id: 1\ndata: a\n\nid: x\x00y\ndata: b\n\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "1", "1"]


def test_a_leading_bom_is_skipped_even_when_split():
    stream = b"\xef\xbb\xbfdata: a\n\n"
    assert decode(stream) == [SseEvent("", b"a", "", None)]
    assert decode(stream[:1], stream[1:2], stream[2:]) == [SseEvent("", b"a", "", None)]
    assert decode(b"data: \xef\xbb\xbf\n\n")[0].data == b"\xef\xbb\xbf"  # only at the very start


def test_a_block_of_only_id_or_retry_or_comments_is_not_dispatched_but_a_bare_event_is():
    assert decode(b"id: 3\n\nretry: 10\n\n: hi\n\n") == []
    assert decode(b"event: error\n\n") == [SseEvent("error", b"", "", None)]


def test_pending_tells_a_cut_off_event():
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\n\n") and not decoder.pending
    decoder.feed(b"data: partial")
    assert decoder.pending
    decoder = SseDecoder()
    decoder.feed(b"data: no blank line yet\n")
    assert decoder.pending


_lines = st.lists(
    st.one_of(
        st.builds(lambda v: b"data: " + v, st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b)),
        st.sampled_from([b"event: audio", b"event: error", b"id: 5", b"retry: 100", b": c", b"", b"data", b"x: y"]),
    ),
    max_size=30,
)


@given(lines=_lines, eol=st.sampled_from([b"\n", b"\r\n", b"\r"]), cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_any_split_of_any_stream_gives_the_same_events(lines, eol, cuts):
    stream = b"".join(line + eol for line in lines)
    bounds = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *bounds], [*bounds, len(stream)], strict=True)]
    assert decode(*pieces) == decode(stream)


@given(lines=_lines)
def test_agrees_with_httpx_sse_on_event_data_and_id(lines):
    """httpx-sse (a test dependency only) as an independent reading of the same standard."""
    text_lines = [line.decode("utf-8", "replace") for line in lines]
    stream = "".join(line + "\n" for line in text_lines)
    reference = httpx_sse._decoders.SSEDecoder()
    expected = []
    for line in stream.split("\n")[:-1]:
        event = reference.decode(line)
        if event is not None and (event.data or event.event != "message"):
            expected.append((event.event if event.event != "message" else "", event.data, event.id))
    # httpx-sse names an event-less block "message" and also dispatches id/retry-only blocks; compare the rest.
    ours = [(e.event, e.data.decode("utf-8", "replace"), e.id) for e in decode(stream.encode()) if e.data or e.event]
    assert ours == expected
