"""Joining PCM parts (byte-exact, streamed), chapter files, the part store, layout shards, fan-out keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile

from batchtts.api.request import TtsRequest
from batchtts.audio.join import JoinError, gap_frames, join_files
from batchtts.job.shaping.chapters import (
    Chapter,
    chapters_from_spans,
    escape,
    ffmetadata,
    frames_to_ms,
    parse_ffmetadata,
)
from batchtts.job.shaping.fanout import fan_out, parse_voices, request_key
from batchtts.job.shaping.parts import PartInfo, PartStore, request_fingerprint
from batchtts.manifest.planner import PlannedRow
from batchtts.manifest.readers import Row
from batchtts.storage.names import relative_audio_path, shard_folders


def write_part(path: Path, samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    soundfile.write(path, samples, rate, subtype=subtype)
    return path


def parts(tmp_path: Path, *lengths: int, rate: int = 16000) -> tuple[list[Path], list[np.ndarray]]:
    rng = np.random.default_rng(7)
    arrays = [rng.integers(-32768, 32767, size=n, dtype=np.int16) for n in lengths]
    paths = [write_part(tmp_path / f"p{i}.wav", a, rate) for i, a in enumerate(arrays)]
    return paths, arrays


@pytest.mark.parametrize("gap_ms", [0, 250])
@pytest.mark.parametrize("file_format", ["wav", "flac", "raw"])
def test_join_is_byte_exact_with_and_without_gaps(tmp_path, gap_ms, file_format):
    paths, arrays = parts(tmp_path, 1000, 1, 0, 70_001)
    final = tmp_path / "out" / f"joined.{'pcm' if file_format == 'raw' else file_format}"
    # A tiny block size makes every part span several blocks (the join streams).
    joined = join_files(paths, final, file_format=file_format, gap_ms=gap_ms, block_frames=4096)
    gap = np.zeros(gap_frames(gap_ms, 16000), dtype=np.int16)
    pieces = [arrays[0]]
    for array in arrays[1:]:
        pieces += [gap, array]
    want = np.concatenate(pieces)
    if file_format == "raw":
        assert final.read_bytes() == want.astype("<i2").tobytes()
    else:
        got, rate = soundfile.read(final, dtype="int16")
        assert rate == 16000
        assert np.array_equal(got, want)
    assert joined.sample_rate == 16000
    assert joined.sink.audio_seconds == pytest.approx(len(want) / 16000)
    # Spans say where each part landed.
    assert len(joined.spans) == 4
    for (start, end), array in zip(joined.spans, arrays):
        assert np.array_equal(want[start:end], array)
    assert [p.name for p in final.parent.iterdir()] == [final.name]  # no temporary file left


def test_gap_frames_round_to_the_nearest_frame():
    assert gap_frames(0, 44100) == 0
    assert gap_frames(250, 44100) == 11025
    assert gap_frames(1, 44100) == 44  # 44.1
    assert gap_frames(1, 8000) == 8


def test_parts_at_different_rates_are_refused_and_leave_no_file(tmp_path):
    a = write_part(tmp_path / "a.wav", np.zeros(100, dtype=np.int16), 16000)
    b = write_part(tmp_path / "b.wav", np.zeros(100, dtype=np.int16), 24000)
    final = tmp_path / "out" / "x.wav"
    with pytest.raises(JoinError, match="24000"):
        join_files([a, b], final)
    assert not final.exists()
    assert list(final.parent.iterdir()) == []


def test_a_missing_or_non_pcm16_part_is_a_join_error(tmp_path):
    a = write_part(tmp_path / "a.wav", np.zeros(100, dtype=np.int16))
    with pytest.raises(JoinError, match="missing"):
        join_files([a, tmp_path / "gone.wav"], tmp_path / "x.wav")
    c = write_part(tmp_path / "c.wav", np.zeros(100, dtype=np.float32), subtype="FLOAT")
    with pytest.raises(JoinError, match="16-bit"):
        join_files([a, c], tmp_path / "y.wav")
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "y.wav").exists()


# --- chapters ---------------------------------------------------------------------------


def test_ffmetadata_text_and_escaping():
    chapters = [Chapter("Intro", 0, 1500), Chapter("a=b; #c \\ d\ne", 1700, 3000)]
    text = ffmetadata(chapters, title="My Book")
    assert text.splitlines()[:9] == [
        ";FFMETADATA1", "title=My Book", "", "[CHAPTER]", "TIMEBASE=1/1000", "START=0", "END=1500",
        "title=Intro", "",
    ]  # fmt: skip
    assert "title=a\\=b\\; \\#c \\\\ d\\\ne" in text
    tags, parsed = parse_ffmetadata(text)
    assert tags == {"title": "My Book"}
    assert [c["title"] for c in parsed] == ["Intro", "a=b; #c \\ d\ne"]
    assert [(int(c["START"]), int(c["END"])) for c in parsed] == [(0, 1500), (1700, 3000)]
    assert escape("plain") == "plain"


def test_chapter_times_come_from_frames():
    assert frames_to_ms(44100, 44100) == 1000
    assert frames_to_ms(22, 44100) == 0 and frames_to_ms(23, 44100) == 1  # 0.499 ms, 0.52 ms
    chapters = chapters_from_spans(["a", "b"], [(0, 8000), (12000, 16004)], 8000)
    assert chapters == [Chapter("a", 0, 1000), Chapter("b", 1500, 2001)]


# --- part store -----------------------------------------------------------------------------


def test_fingerprint_covers_what_shapes_the_audio_and_nothing_else():
    base = TtsRequest(text="Hello.", voice_id="emily", sample_rate=24000)
    assert request_fingerprint(base) == request_fingerprint(
        TtsRequest(text="Hello.", voice_id="emily", sample_rate=24000)
    )
    assert request_fingerprint(base) == request_fingerprint(base.with_request_id("other.id.1"))
    for changed in (
        TtsRequest(text="Hello!", voice_id="emily", sample_rate=24000),
        TtsRequest(text="Hello.", voice_id="magnus", sample_rate=24000),
        TtsRequest(text="Hello.", voice_id="emily", sample_rate=16000),
        TtsRequest(text="Hello.", voice_id="emily", sample_rate=24000, speed=1.1),
        TtsRequest(text="Hello.", voice_id="emily", sample_rate=24000, pronunciation_dicts=("d1",)),
    ):
        assert request_fingerprint(changed) != request_fingerprint(base)
    assert len(request_fingerprint(base)) == 32


def test_part_store_finds_saves_and_removes(tmp_path):
    store = PartStore(tmp_path / "parts")
    fp = "ab" + "0" * 30
    assert store.find(fp) is None
    path = store.audio_path(fp)
    assert path == tmp_path / "parts" / "ab" / f"{fp}.wav"
    path.parent.mkdir(parents=True)
    write_part(path, np.zeros(10, dtype=np.int16))
    assert store.find(fp) == PartInfo()  # audio without its JSON is still a finished part
    store.save_info(fp, PartInfo("req.1", "srv-1", 20))
    assert store.find(fp) == PartInfo("req.1", "srv-1", 20)
    store.remove(fp)
    assert store.find(fp) is None and list(path.parent.iterdir()) == []


# --- layout and fan-out -------------------------------------------------------------------------


def test_shard_folders_are_hex_pairs_of_the_id_hash():
    digest = hashlib.sha256(b"take-01").hexdigest()
    assert shard_folders("take-01", 2) == (digest[:2], digest[2:4])
    assert shard_folders("take-01", 0) == ()
    assert str(relative_audio_path("take-01", "wav", shard_levels=2)) == f"audio/{digest[:2]}/{digest[2:4]}/take-01.wav"
    assert str(relative_audio_path("x", "wav", voice="emily")) == "audio/emily/x.wav"
    assert str(relative_audio_path("x", "wav", voice="../Evil")).startswith("audio/Evil~")
    with pytest.raises(ValueError):
        shard_folders("x", 5)


def test_voices_and_request_keys():
    assert parse_voices(" magnus, emily,magnus ,") == ("magnus", "emily")
    with pytest.raises(ValueError):
        parse_voices(" , ")
    planned = PlannedRow(Row(1, "r", "Hi.", {}, {}), TtsRequest(text="Hi.", voice_id="magnus"), None)
    items = fan_out(planned, ("emily", "lucia"))
    assert [(i, v, p.request.voice_id) for i, v, p in items] == [(0, "emily", "emily"), (1, "lucia", "lucia")]
    assert request_key("r") == "r"
    assert request_key("r", voice="emily", part=3) == "r@emily#p3"
