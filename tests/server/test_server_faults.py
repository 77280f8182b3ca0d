"""Every fault kind, as a client (httpx + httpx_sse) sees it, and reproducible by seed."""

from __future__ import annotations

import base64
import binascii
import json

import httpx
import httpx_sse
import numpy as np
import pytest

from batchtts.server.config import FAULT_KINDS, ServerConfig
from batchtts.server.faults import FaultInjector, FaultPlan, parse_fault
from tests.server_support import AUTH, BODY, LIVE, SYNC, as_int16, expected_pcm, live, tts_error

#: Long enough for many chunks, so "mid-stream" has room.
LONG = {**BODY, "text": "A longer sentence, so the stream has many chunks to cut."}


@pytest.mark.parametrize(
    "kind,status,error,retry_after",
    [
        ("500", 500, "internal_server_error", None),
        ("502", 502, "bad_gateway", None),
        ("503", 503, "service_unavailable", "1"),
        ("429", 429, "rate_limit_exceeded", "1"),
    ],
)
def test_status_faults_answer_tts_error(local_server, kind, status, error, retry_after):
    server = local_server(faults={kind: 1.0})
    for path in (LIVE, SYNC):
        response = httpx.post(server.base_url + path, json={**BODY, "request_id": "r1"}, headers=AUTH)
        assert response.status_code == status
        assert tts_error(response)["error"] == error
        assert response.headers.get("retry-after") == retry_after
        assert response.headers["x-request-id"] and response.headers["x-external-request-id"] == "r1"
    assert server.stats.snapshot()["faults"] == {kind: 2}


def test_drop_cuts_the_connection_mid_stream(local_server):
    server = local_server(faults={"drop": 1.0})
    received: list[httpx_sse.ServerSentEvent] = []
    with httpx.Client(base_url=server.base_url, headers=AUTH) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            with httpx_sse.connect_sse(client, "POST", LIVE, json=LONG) as source:
                assert source.response.status_code == 200
                for event in source.iter_sse():
                    received.append(event)
        # The sync route is cut too: fewer bytes than its Content-Length promised.
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(SYNC, json=LONG)
    assert received and all(e.event == "audio" for e in received)  # some audio came, never the done frame
    assert len(received) < len(expected_pcm(**LONG)) // 1600
    assert server.stats.snapshot()["faults"] == {"drop": 2}


def test_nodone_ends_the_stream_cleanly_without_the_done_frame(local_server):
    server = local_server(faults={"nodone": 1.0})
    result = live(server.base_url, LONG)  # no exception: the body ends properly
    assert result.status == 200
    assert result.audio_events and not result.done
    assert all(e.event == "audio" for e in result.events)
    full = expected_pcm(**LONG)
    assert len(result.audio) < len(full) and full.startswith(result.audio)
    assert server.stats.snapshot()["faults"] == {"nodone": 1}


def test_error_event_arrives_mid_stream_and_ends_it(local_server):
    server = local_server(faults={"error-event": 1.0})
    result = live(server.base_url, LONG)
    assert result.status == 200
    assert [e.event for e in result.events][-1] == "error"
    assert result.events[0].event == "audio"  # audio first, then the error
    error = result.events[-1].json()
    assert set(error) == {"error", "message"} and error["error"] == "internal_server_error"
    assert not result.done
    assert server.stats.snapshot()["faults"] == {"error-event": 1}


def test_error_frame_is_the_older_routes_shape_mid_stream(local_server):
    """No event line: a data frame with status "error" and a message, after some audio; the stream ends."""
    server = local_server(faults={"error-frame": 1.0})
    result = live(server.base_url, LONG)
    assert result.status == 200
    assert result.events[0].event == "audio"
    last = result.events[-1]
    assert last.event == "message" and last.json() == {"status": "error", "message": "injected fault: error-frame"}
    assert not any(e.json().get("done") is True for e in result.events)
    assert server.stats.snapshot()["faults"] == {"error-frame": 1}


def _undecodable(event: httpx_sse.ServerSentEvent) -> bool:
    """Whether even a lenient client cannot get audio bytes out of this event."""
    try:
        audio = json.loads(event.data)["audio"]
    except (ValueError, KeyError, TypeError):
        return True
    try:
        base64.b64decode(audio, validate=True)
    except binascii.Error:
        try:
            base64.b64decode(audio)  # lenient mode drops junk characters; must still fail
        except binascii.Error:
            return True
    return False


def test_bad_frame_sends_one_frame_no_client_can_decode(local_server):
    # Different seeds draw both variants: data that is not JSON, audio that is not base64.
    seen_json_errors, seen_base64_errors = 0, 0
    for seed in range(6):
        server = local_server(faults={"bad-frame": 1.0}, seed=seed)
        result = live(server.base_url, LONG)
        bad = [e for e in result.audio_events if _undecodable(e)]
        assert len(bad) == 1 and bad[0] is not result.audio_events[0]
        good = b"".join(base64.b64decode(e.json()["audio"]) for e in result.audio_events if e is not bad[0])
        assert good == expected_pcm(**LONG)  # the stream otherwise goes on to the end
        assert result.done
        try:
            json.loads(bad[0].data)
            seen_base64_errors += 1
        except ValueError:
            seen_json_errors += 1
    assert seen_json_errors and seen_base64_errors


def _outcomes(base_url: str, count: int) -> list[int]:
    with httpx.Client(base_url=base_url, headers=AUTH) as client:
        return [client.post(SYNC, json=BODY).status_code for _ in range(count)]


def test_faults_are_reproducible_by_seed(local_server):
    faults = {"500": 0.3, "503": 0.3}
    first = _outcomes(local_server(faults=faults, seed=7).base_url, 30)
    again = _outcomes(local_server(faults=faults, seed=7).base_url, 30)
    other = _outcomes(local_server(faults=faults, seed=8).base_url, 30)
    assert first == again
    assert first != other
    assert {200, 500, 503} <= set(first)  # a mix, not all or nothing


def test_probability_zero_never_and_one_always():
    never = FaultInjector({"drop": 0.0}, seed=1)
    always = FaultInjector({"502": 1.0, "drop": 1.0}, seed=1)
    assert all(never.draw().kind is None for _ in range(200))
    assert all(always.draw().kind == "502" for _ in range(200))  # a status fault wins over a stream fault


def test_stream_faults_strike_after_some_audio_and_before_the_end():
    assert FaultPlan("drop", position=0.0).strike_index(10) == 1
    assert FaultPlan("drop", position=0.999).strike_index(10) == 9
    assert FaultPlan("drop", position=0.5).strike_index(2) == 1
    assert FaultPlan("drop", position=0.5).strike_index(1) == 1


@pytest.mark.parametrize(
    "text,kind,probability", [("503:0.25", "503", 0.25), ("bad-frame:1", "bad-frame", 1.0), ("drop:0", "drop", 0.0)]
)
def test_parse_fault(text, kind, probability):
    assert parse_fault(text) == (kind, probability)


@pytest.mark.parametrize("text", ["503", "boom:0.5", "503:x", "503:1.5", "503:-0.1", ":0.5"])
def test_parse_fault_refuses_nonsense(text):
    with pytest.raises(ValueError):
        parse_fault(text)


def test_every_fault_kind_is_covered_here():
    assert set(FAULT_KINDS) == {
        *("500", "502", "503", "429", "drop", "nodone", "error-event", "bad-frame", "error-frame"),
        *("truncate", "silence", "clip"),
    }


# --- audio faults: whole streams that end with done, carrying bad audio ------------------------


def test_truncate_sends_the_start_of_the_audio_then_done(local_server):
    server = local_server(faults={"truncate": 1.0})
    result = live(server.base_url)
    assert result.status == 200 and result.done
    want = expected_pcm()
    assert 0.1 * len(want) <= len(result.audio) <= 0.4 * len(want) + 2
    assert want.startswith(result.audio)
    assert server.stats.snapshot()["faults"] == {"truncate": 1}


def test_silence_is_digital_silence_of_the_right_length(local_server):
    server = local_server(faults={"silence": 1.0})
    result = live(server.base_url)
    assert result.done and result.audio == bytes(len(expected_pcm()))


def test_clip_sends_the_audio_too_loud_and_clipped(local_server):
    server = local_server(faults={"clip": 1.0})
    result = live(server.base_url)
    samples = as_int16(result.audio).astype(np.int32)
    want = as_int16(expected_pcm()).astype(np.int32)
    assert result.done and len(samples) == len(want)
    assert np.array_equal(samples, np.clip(want * 8, -32768, 32767))
    assert np.count_nonzero(np.abs(samples) >= 32767) > 0.1 * len(samples)


def test_fault_first_strikes_only_the_first_request_of_each_text(local_server):
    server = local_server(faults={"silence": 1.0}, fault_first=1)
    other = {**BODY, "text": "Another text."}
    assert live(server.base_url).audio == bytes(len(expected_pcm()))
    assert live(server.base_url, other).audio == bytes(len(expected_pcm(text="Another text.")))
    assert live(server.base_url).audio == expected_pcm()  # asked before: clean
    assert live(server.base_url, {**BODY, "request_id": "x.1"}).audio == expected_pcm()  # ids do not count
    assert live(server.base_url, {**BODY, "sample_rate": 16000}).audio == bytes(len(expected_pcm(sample_rate=16000)))
    assert server.stats.snapshot()["faults"] == {"silence": 3}


def test_fault_first_must_be_positive():
    with pytest.raises(ValueError, match="fault_first"):
        ServerConfig(fault_first=0)
