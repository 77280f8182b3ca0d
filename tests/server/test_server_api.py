"""The local server speaks the Waves API: the seed page's example, routes, auth, validation, headers."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time

import httpx
import numpy as np
import pytest
import soundfile

from batchtts.server.config import ServerConfig
from batchtts.server.voices import CATALOG
from tests.server_support import (
    AUTH,
    BODY,
    LIVE,
    STATS,
    SYNC,
    VOICES,
    expected_pcm,
    live,
    tts_error,
    validation_issues,
)

#: The seed page's cURL example, byte for byte (only the host differs).
SEED_BODY = """{
    "text": "Streaming this paragraph chunk by chunk so playback can start sooner.",
    "voice_id": "magnus",
    "sample_rate": 24000,
    "output_format": "pcm"
  }"""
FRAME = re.compile(rb'event: audio\ndata: \{"audio": "([A-Za-z0-9+/=]+)", "done": false, "status": "206"\}\n\n')


def _post_like_curl(url: str) -> bytes:
    """The response body of the seed page's curl command (httpx when curl is not installed)."""
    curl = shutil.which("curl")
    if curl is None:
        with httpx.stream("POST", url, content=SEED_BODY, headers={**AUTH, "Content-Type": "application/json"}) as r:
            assert r.headers["content-type"] == "text/event-stream"
            return r.read()
    command = [
        curl,
        "-N",
        "-sS",
        "--max-time",
        "30",
        "-X",
        "POST",
        url,
        "-H",
        "Authorization: Bearer $SMALLEST_API_KEY".replace("$SMALLEST_API_KEY", "test-key"),
        "-H",
        "Content-Type: application/json",
        "-d",
        SEED_BODY,
    ]
    return subprocess.run(command, capture_output=True, check=True, timeout=60).stdout


def test_seed_page_curl_example_streams_the_documented_frames(server):
    body = _post_like_curl(server.base_url + LIVE)
    frames = FRAME.findall(body)
    # Exactly the documented layout (2026): audio frames, then the done frame with no event line, nothing else.
    chunk = b'event: audio\ndata: {"audio": "%s", "done": false, "status": "206"}\n\n'
    assert body == b"".join(chunk % f for f in frames) + b'data: {"status": "200", "done": true}\n\n'
    assert len(frames) > 10  # many chunks, not one blob
    audio = b"".join(base64.b64decode(f, validate=True) for f in frames)
    assert audio == expected_pcm(**json.loads(SEED_BODY))
    text = json.loads(SEED_BODY)["text"]
    assert len(audio) // 2 >= len(text) * round(0.06 * 24000)


def test_live_headers_and_chunking(server):
    result = live(server.base_url, {**BODY, "sample_rate": 16000})
    assert result.status == 200
    assert result.headers["content-type"] == "text/event-stream"
    assert result.done
    sizes = [len(base64.b64decode(e.json()["audio"])) for e in result.audio_events]
    # 100 ms of 16-bit audio per chunk (the last one shorter), whole samples each.
    assert sizes[:-1] == [1600 * 2] * (len(sizes) - 1)
    assert 0 < sizes[-1] <= 3200 and sizes[-1] % 2 == 0
    assert result.audio == expected_pcm(sample_rate=16000)


def test_chunk_ms_sets_the_audio_per_chunk(local_server):
    server = local_server(chunk_ms=20)
    result = live(server.base_url)
    sizes = [len(base64.b64decode(e.json()["audio"])) for e in result.audio_events]
    assert sizes[0] == 160 * 2
    assert result.audio == expected_pcm()


@pytest.mark.parametrize("output_format", ["pcm", "wav", "mp3", "ulaw", "alaw"])
def test_sync_route_returns_the_same_audio_as_the_stream(server, output_format):
    body = {**BODY, "output_format": output_format}
    with httpx.Client(base_url=server.base_url, headers=AUTH) as client:
        sync = client.post(SYNC, json=body)
    streamed = live(server.base_url, body)
    assert sync.status_code == 200
    assert sync.content == streamed.audio  # the stream's chunks join into the sync answer
    media = {
        "pcm": "audio/pcm",
        "wav": "audio/wav",
        "mp3": "audio/mpeg",
        "ulaw": "audio/basic",
        "alaw": "audio/x-alaw-basic",
    }
    assert sync.headers["content-type"] == media[output_format]
    assert int(sync.headers["content-length"]) == len(sync.content)


def test_voices_route_lists_the_catalog(server):
    response = httpx.get(server.base_url + VOICES, headers=AUTH)
    assert response.status_code == 200
    voices = {v["voiceId"]: v for v in response.json()["voices"]}
    assert {"magnus", "emily", "arjun", "priya", "lucia"} <= set(voices)
    assert voices["arjun"]["tags"] == {"language": ["english", "hindi"], "gender": "male"}
    assert voices["priya"]["tags"]["language"] == ["hindi"]
    assert voices["lucia"]["tags"]["language"] == ["spanish"]
    assert all(set(v) == {"voiceId", "displayName", "tags"} for v in voices.values())
    assert set(voices) == set(CATALOG)


# -- auth -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "test-key"},
    ],
    ids=["missing", "basic", "empty", "no-token", "no-scheme"],
)
@pytest.mark.parametrize("method,path", [("POST", LIVE), ("POST", SYNC), ("GET", VOICES)])
def test_missing_or_malformed_authorization_is_401(server, headers, method, path):
    response = httpx.request(method, server.base_url + path, json=BODY, headers=headers)
    assert response.status_code == 401
    assert tts_error(response)["error"] == "unauthorized"
    assert response.headers["x-request-id"]


def test_without_api_key_any_bearer_token_works(server):
    for token in ("a", "sk-anything", "x" * 200):
        response = httpx.post(server.base_url + SYNC, json=BODY, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
    assert (
        httpx.post(server.base_url + SYNC, json=BODY, headers={"Authorization": "bearer lower-case-scheme"}).status_code
        == 200
    )


def test_with_api_key_only_that_key_works(local_server):
    server = local_server(api_key="sk-right")
    url = server.base_url + SYNC
    assert httpx.post(url, json=BODY, headers={"Authorization": "Bearer sk-right"}).status_code == 200
    wrong = httpx.post(url, json=BODY, headers={"Authorization": "Bearer sk-wrong"})
    assert wrong.status_code == 401
    assert "sk-right" not in wrong.text
    assert tts_error(wrong)["message"] == "invalid API key"
    assert (
        httpx.post(server.base_url + LIVE, json=BODY, headers={"Authorization": "Bearer sk-rightx"}).status_code == 401
    )
    assert httpx.get(server.base_url + VOICES, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(server.base_url + VOICES, headers={"Authorization": "Bearer sk-right"}).status_code == 200


# -- validation -------------------------------------------------------------------------

INVALID: list[tuple[dict, str]] = [
    ({"voice_id": "magnus"}, "text"),
    ({"text": "", "voice_id": "magnus"}, "text"),
    ({"text": "   ", "voice_id": "magnus"}, "text"),
    ({"text": 42, "voice_id": "magnus"}, "text"),
    ({"text": "hi"}, "voice_id"),
    ({"text": "hi", "voice_id": "nobody"}, "voice_id"),
    ({"text": "hi", "voice_id": 7}, "voice_id"),
    ({**BODY, "model": "lightning_v2"}, "model"),
    ({**BODY, "sample_rate": 22050}, "sample_rate"),
    ({**BODY, "sample_rate": "fast"}, "sample_rate"),
    ({**BODY, "sample_rate": True}, "sample_rate"),
    ({**BODY, "sample_rate": 8000.5}, "sample_rate"),
    ({**BODY, "speed": 0.49}, "speed"),
    ({**BODY, "speed": 2.01}, "speed"),
    ({**BODY, "speed": "1.0"}, "speed"),
    ({**BODY, "speed": True}, "speed"),
    ({**BODY, "language": "xx"}, "language"),
    ({**BODY, "language": "EN"}, "language"),
    ({**BODY, "number_pronunciation_language": "english"}, "number_pronunciation_language"),
    ({**BODY, "math_notation": "true"}, "math_notation"),
    ({**BODY, "output_format": "ogg"}, "output_format"),
    ({**BODY, "pronunciation_dicts": "dict-1"}, "pronunciation_dicts"),
    ({**BODY, "pronunciation_dicts": ["ok", 3]}, "pronunciation_dicts"),
    ({**BODY, "word_timestamps": "yes"}, "word_timestamps"),
    ({**BODY, "session_id": "has space"}, "session_id"),
    ({**BODY, "session_id": "x" * 129}, "session_id"),
    ({**BODY, "session_id": ""}, "session_id"),
    ({**BODY, "request_id": "a/b"}, "request_id"),
    ({**BODY, "request_id": "ünïcode"}, "request_id"),
    ({**BODY, "request_id": 12}, "request_id"),
]


@pytest.mark.parametrize("body,field", INVALID, ids=[f"{f}-{i}" for i, (_, f) in enumerate(INVALID)])
def test_each_invalid_field_is_a_400_naming_it(server, body, field):
    with httpx.Client(base_url=server.base_url, headers=AUTH) as client:
        for path in (LIVE, SYNC):
            response = client.post(path, json=body)
            assert response.status_code == 400
            [issue] = validation_issues(response)  # the live API's Zod-style list, one issue naming the field
            assert issue["path"] == [field], issue
            assert issue["message"] and not issue["message"].startswith(f"{field}:"), issue


VALID: list[dict] = [
    {**BODY, "sample_rate": "16000"},
    {**BODY, "sample_rate": 24000.0},
    {**BODY, "sample_rate": 44100},
    {**BODY, "speed": 0.5},
    {**BODY, "speed": 2},
    {**BODY, "model": "lightning_v3.1_pro"},
    {**BODY, "language": "hi"},
    {**BODY, "language": "fr"},
    {**BODY, "language": "auto", "number_pronunciation_language": "ja", "math_notation": True},
    {**BODY, "pronunciation_dicts": ["d1", "d2"]},
    {**BODY, "pronunciation_dicts": []},
    {**BODY, "word_timestamps": True},
    {**BODY, "session_id": "s" * 128, "request_id": "A-z_0.9"},
    {**BODY, "an_unknown_field": {"is": "ignored"}},
    {**BODY, "language": None, "speed": None},
    {"text": "Ünïcödé text, नमस्ते।", "voice_id": "priya"},
]


@pytest.mark.parametrize("body", VALID, ids=range(len(VALID)))
def test_every_valid_form_is_accepted(server, body):
    response = httpx.post(server.base_url + SYNC, json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert len(response.content) > 0


def test_string_sample_rate_gives_the_same_audio_as_a_number(server):
    with httpx.Client(base_url=server.base_url, headers=AUTH) as client:
        as_text = client.post(SYNC, json={**BODY, "sample_rate": "16000"}).content
        as_number = client.post(SYNC, json={**BODY, "sample_rate": 16000}).content
    assert as_text == as_number == expected_pcm(sample_rate=16000)


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe\x00garbage"],
    ids=["empty", "broken", "array", "string", "null", "bytes"],
)
def test_a_body_that_is_not_a_json_object_is_400(server, content):
    response = httpx.post(server.base_url + LIVE, content=content, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400
    [issue] = validation_issues(response)
    assert issue["path"] == [] and issue["message"].startswith("the body ")


def test_an_enum_issue_says_what_was_received_and_the_options(server):
    response = httpx.post(server.base_url + LIVE, json={**BODY, "output_format": "mulaw"}, headers=AUTH)
    [issue] = validation_issues(response)
    assert issue["code"] == "invalid_enum_value" and issue["received"] == "mulaw"
    assert issue["options"] == ["pcm", "wav", "mp3", "ulaw", "alaw"] and issue["path"] == ["output_format"]


# -- headers ----------------------------------------------------------------------------


def test_correlation_ids_are_echoed(server):
    body = {**BODY, "request_id": "row-17.a_b", "session_id": "job-2024"}
    streamed = live(server.base_url, body)
    assert streamed.headers["x-external-request-id"] == "row-17.a_b"
    assert streamed.headers["x-external-session-id"] == "job-2024"
    sync = httpx.post(server.base_url + SYNC, json=body, headers=AUTH)
    assert sync.headers["x-external-request-id"] == "row-17.a_b"
    assert sync.headers["x-external-session-id"] == "job-2024"
    plain = httpx.post(server.base_url + SYNC, json=BODY, headers=AUTH)
    # As documented in 2026: present and empty when the client sent none.
    assert plain.headers["x-external-request-id"] == plain.headers["x-external-session-id"] == ""
    # Still echoed when another field is wrong, so a client can match the 400 to its row.
    refused = httpx.post(server.base_url + SYNC, json={**body, "speed": 9}, headers=AUTH)
    assert refused.status_code == 400
    assert refused.headers["x-external-request-id"] == "row-17.a_b"


def test_every_answer_carries_a_server_session_id(server):
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    streamed = live(server.base_url)
    refused = httpx.post(server.base_url + LIVE, json={**BODY, "speed": 9}, headers=AUTH)
    voices = httpx.get(server.base_url + VOICES, headers=AUTH)
    ids = [r.headers["x-session-id"] for r in (streamed, refused, voices)]
    assert all(uuid.fullmatch(i) for i in ids) and len(set(ids)) == 3


def test_content_expiry_is_answered_only_when_asked(local_server):
    asked = {**AUTH, "x-expire-content": "true"}
    default = local_server()
    assert live(default.base_url, headers=asked).headers["x-content-expiry"] == "applied"
    assert "x-content-expiry" not in live(default.base_url).headers
    assert "x-content-expiry" not in live(default.base_url, headers={**AUTH, "x-expire-content": "false"}).headers
    sync = httpx.post(default.base_url + SYNC, json=BODY, headers=asked)
    assert sync.headers["x-content-expiry"] == "applied"
    for verdict in ("not-entitled", "unavailable"):
        server = local_server(content_expiry=verdict)
        assert live(server.base_url, headers=asked).headers["x-content-expiry"] == verdict
    with pytest.raises(ValueError, match="content_expiry"):
        ServerConfig(content_expiry="soon")


def test_every_response_has_a_unique_server_request_id(local_server):
    server = local_server(rate=None, concurrency=1, faults={})
    with httpx.Client(base_url=server.base_url) as client:
        responses = [
            client.post(LIVE, json=BODY, headers=AUTH),  # 200 stream
            client.post(SYNC, json=BODY, headers=AUTH),  # 200
            client.post(SYNC, json={"text": ""}, headers=AUTH),  # 400
            client.post(SYNC, json=BODY),  # 401
            client.get("/waves/v1/nowhere", headers=AUTH),  # 404
            client.get(SYNC, headers=AUTH),  # 405
            client.get(VOICES, headers=AUTH),
            client.get(STATS),
        ]
    assert [r.status_code for r in responses] == [200, 200, 400, 401, 404, 405, 200, 200]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(ids) and len(set(ids)) == len(ids)
    assert tts_error(responses[4])["error"] == "not_found"


# -- stats ------------------------------------------------------------------------------


def test_stats_route_counts_what_the_server_saw(server):
    before = time.monotonic()
    with httpx.Client(base_url=server.base_url) as client:
        client.post(LIVE, json=BODY, headers=AUTH).read()
        client.post(SYNC, json=BODY, headers=AUTH)
        client.post(SYNC, json={"text": "x"}, headers=AUTH)
        client.post(SYNC, json=BODY)
        client.get(VOICES, headers=AUTH)
        stats = client.get(STATS).json()
    assert stats["requests"] == {"live": 1, "sync": 3, "voices": 1}
    assert stats["responses"] == {"200": 3, "400": 1, "401": 1}
    assert stats["ok"] == 3 and stats["client_errors"] == 2 and stats["rate_limited"] == 0
    assert stats["starts_total"] == 2 and stats["streams_completed"] == 2
    assert stats["max_concurrent_streams"] == 1 and stats["active_streams"] == 0
    # Monotonic times on the same clock the test (in the same process) reads.
    assert len(stats["start_times"]) == 2
    assert before <= stats["start_times"][0] <= stats["start_times"][1] <= time.monotonic()
    assert stats == server.stats.snapshot()
    reset = httpx.delete(server.base_url + STATS).json()
    assert reset["starts_total"] == 0 and reset["requests"] == {} and reset["start_times"] == []


def test_audio_is_pcm_wav_mp3_and_g711_as_asked(server):
    with httpx.Client(base_url=server.base_url, headers=AUTH) as client:
        pcm = np.frombuffer(client.post(SYNC, json=BODY).content, "<i2")
        wav = client.post(SYNC, json={**BODY, "output_format": "wav"}).content
        mp3 = client.post(SYNC, json={**BODY, "output_format": "mp3"}).content
        ulaw = client.post(SYNC, json={**BODY, "output_format": "ulaw"}).content
        alaw = client.post(SYNC, json={**BODY, "output_format": "alaw"}).content
    import io

    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    assert rate == 8000 and np.array_equal(samples, pcm)
    decoded, rate = soundfile.read(io.BytesIO(mp3), dtype="int16")
    assert rate == 8000 and abs(len(decoded) - len(pcm)) < 0.1 * len(pcm)
    for data, subtype in ((ulaw, "ULAW"), (alaw, "ALAW")):
        assert len(data) == len(pcm)  # one byte a sample, no header
        g711, _ = soundfile.read(
            io.BytesIO(data), format="RAW", subtype=subtype, samplerate=8000, channels=1, dtype="int16"
        )
        assert np.abs(g711.astype(int) - pcm).max() <= 1024  # G.711's quantisation, not other audio
    assert ulaw != alaw
