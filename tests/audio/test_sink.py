"""AudioSink: every format stored so soundfile reads it back exactly, whole or not at all."""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchtts.audio.codecs import MalformedAudio
from batchtts.audio.sink import FILE_FORMATS, AudioSink
from batchtts.errors import StreamIncomplete
from batchtts.storage.files import create_temp_file, remove_stale_temp_files

RATE = 16000
OUTPUT_FORMATS = ("pcm", "wav", "mp3", "ulaw", "alaw")
_CONTAINERS = {
    "wav": ("WAV", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "ulaw": ("RAW", "ULAW"),
    "alaw": ("RAW", "ALAW"),
}


def tone(frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wave = np.sin(np.arange(frames) * 0.07) * 9000 + rng.normal(0, 500, frames)
    return wave.astype(np.int16)


def encode(samples: np.ndarray, rate: int, output_format: str) -> bytes:
    """What a server sends for ``output_format`` (the whole stream, before chunking)."""
    pcm = np.ascontiguousarray(samples, dtype="<i2")
    if output_format == "pcm":
        return pcm.tobytes()
    container, subtype = _CONTAINERS[output_format]
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", samplerate=rate, channels=1, format=container, subtype=subtype) as out:
        out.write(pcm)
    return buffer.getvalue()


def g711_decoded(data: bytes, output_format: str, rate: int) -> np.ndarray:
    subtype = "ULAW" if output_format == "ulaw" else "ALAW"
    samples, _ = sf.read(io.BytesIO(data), format="RAW", subtype=subtype, samplerate=rate, channels=1, dtype="int16")
    return samples


def store(
    tmp_path: Path,
    chunks: Iterable[bytes],
    *,
    output_format: str,
    file_format: str = "wav",
    rate: int = RATE,
    name: str = "row",
):
    extension = AudioSink.extension_for(output_format, file_format)
    final = tmp_path / "audio" / f"{name}.{extension}"
    with AudioSink(final, output_format=output_format, sample_rate=rate, file_format=file_format) as sink:
        for chunk in chunks:
            sink.write(chunk)
        result = sink.commit()
    return result


def cut(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


# --- every combination ----------------------------------------------------------


@pytest.mark.parametrize("file_format", FILE_FORMATS)
@pytest.mark.parametrize("output_format", ("pcm", "wav"))
def test_pcm_is_stored_sample_exact(tmp_path: Path, output_format: str, file_format: str) -> None:
    samples = tone(4000)
    data = encode(samples, RATE, output_format)
    result = store(tmp_path, cut(data, 333), output_format=output_format, file_format=file_format)
    assert result.audio_bytes == len(data)
    assert result.audio_seconds == pytest.approx(4000 / RATE)
    assert result.sample_rate == RATE
    if file_format == "raw":
        assert result.path.suffix == ".pcm"
        assert result.path.read_bytes() == samples.astype("<i2").tobytes()
        read, rate = sf.read(
            result.path,
            format="RAW",
            subtype="PCM_16",
            endian="LITTLE",
            samplerate=RATE,
            channels=1,
            dtype="int16",
        )
    else:
        assert result.path.suffix == f".{file_format}"
        info = sf.info(str(result.path))
        assert (info.format, info.subtype, info.channels) == (file_format.upper(), "PCM_16", 1)
        read, rate = sf.read(result.path, dtype="int16")
    assert rate == RATE
    np.testing.assert_array_equal(read, samples)


@pytest.mark.parametrize("file_format", FILE_FORMATS)
@pytest.mark.parametrize("output_format", ("ulaw", "alaw"))
def test_g711_is_stored_as_sent(tmp_path: Path, output_format: str, file_format: str) -> None:
    data = encode(tone(3001), 8000, output_format)  # odd length: the WAV data chunk needs a pad byte
    result = store(tmp_path, cut(data, 97), output_format=output_format, file_format=file_format, rate=8000)
    expected = g711_decoded(data, output_format, 8000)
    assert result.audio_bytes == len(data) == 3001
    assert result.audio_seconds == pytest.approx(3001 / 8000)
    if file_format == "raw":
        assert result.path.suffix == f".{output_format}"
        assert result.path.read_bytes() == data
        return
    info = sf.info(str(result.path))
    read, rate = sf.read(result.path, dtype="int16")
    assert rate == 8000 and info.frames == 3001
    np.testing.assert_array_equal(read, expected)
    if file_format == "wav":
        assert info.subtype == ("ULAW" if output_format == "ulaw" else "ALAW")
        raw = result.path.read_bytes()
        tag = struct.unpack_from("<H", raw, 20)[0]
        assert tag == (7 if output_format == "ulaw" else 6)
        assert raw[38:42] == b"fact" and struct.unpack_from("<I", raw, 46)[0] == 3001
        assert raw[58 : 58 + 3001] == data  # the bytes as they came
        assert struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8
    else:
        assert info.format == "FLAC"


@pytest.mark.parametrize("file_format", FILE_FORMATS)
def test_mp3_is_stored_as_sent(tmp_path: Path, file_format: str) -> None:
    data = encode(tone(8000), RATE, "mp3")
    result = store(tmp_path, cut(data, 101), output_format="mp3", file_format=file_format)
    assert result.path.suffix == ".mp3"
    assert result.path.read_bytes() == data
    info = sf.info(str(result.path))
    assert info.samplerate == RATE and info.frames == 8000
    assert result.audio_seconds == pytest.approx(0.5)
    assert result.sample_rate == RATE


def test_mp3_with_a_complete_file_per_chunk_plays_to_the_end(tmp_path: Path) -> None:
    samples = tone(24000)
    pieces = [encode(samples[i : i + 4000], 24000, "mp3") for i in range(0, 24000, 4000)]
    result = store(tmp_path, pieces, output_format="mp3", rate=24000)
    read, rate = sf.read(result.path, dtype="int16")
    assert rate == 24000
    # Each piece carries its own encoder delay and padding (about two MP3 frames of 576 samples).
    assert 24000 <= len(read) <= 24000 + 3 * 576 * len(pieces)
    assert result.audio_seconds == pytest.approx(len(read) / 24000)


# --- chunk boundaries anywhere ----------------------------------------------------------


def test_wav_split_at_every_offset_including_inside_the_header(tmp_path: Path) -> None:
    samples = tone(40)
    data = encode(samples, RATE, "wav")
    for offset in range(1, len(data)):
        result = store(tmp_path, [data[:offset], data[offset:]], output_format="wav", name=f"at-{offset}")
        read, rate = sf.read(result.path, dtype="int16")
        assert rate == RATE
        np.testing.assert_array_equal(read, samples, err_msg=f"split at {offset}")


def test_pcm_split_at_every_odd_offset(tmp_path: Path) -> None:
    samples = tone(60)
    data = encode(samples, RATE, "pcm")
    for offset in range(1, len(data), 2):
        result = store(tmp_path, [data[:offset], data[offset:]], output_format="pcm", name=f"at-{offset}")
        read, _ = sf.read(result.path, dtype="int16")
        np.testing.assert_array_equal(read, samples, err_msg=f"split at {offset}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    output_format=st.sampled_from(["pcm", "wav"]),
    file_format=st.sampled_from(["wav", "flac"]),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=25),
)
def test_any_chunking_gives_the_same_samples(
    tmp_path: Path, output_format: str, file_format: str, cuts: list[int]
) -> None:
    samples = tone(128, seed=3)
    data = encode(samples, RATE, output_format)
    points = sorted(set(cuts))
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    result = store(tmp_path, chunks, output_format=output_format, file_format=file_format)
    read, rate = sf.read(result.path, dtype="int16")
    assert rate == RATE
    np.testing.assert_array_equal(read, samples)


def test_one_byte_chunks(tmp_path: Path) -> None:
    samples = tone(50)
    data = encode(samples, RATE, "wav")
    result = store(tmp_path, cut(data, 1), output_format="wav", file_format="flac")
    np.testing.assert_array_equal(sf.read(result.path, dtype="int16")[0], samples)


def test_a_wav_header_on_every_chunk_is_stripped(tmp_path: Path) -> None:
    samples = tone(3000)
    pieces = [encode(samples[i : i + 500], 24000, "wav") for i in range(0, 3000, 500)]
    first = pieces[0]
    chunks = [first[:7], first[7:30], first[30:], *pieces[1:]]  # the first header itself arrives in pieces
    result = store(tmp_path, chunks, output_format="wav", rate=44100)  # the header's rate wins
    read, rate = sf.read(result.path, dtype="int16")
    assert rate == 24000 and result.sample_rate == 24000
    np.testing.assert_array_equal(read, samples)
    assert result.audio_bytes == sum(map(len, pieces))
    assert result.audio_seconds == pytest.approx(3000 / 24000)


def test_wav_header_with_extra_chunks_and_extensible_format(tmp_path: Path) -> None:
    samples = tone(100)
    pcm = samples.astype("<i2").tobytes()
    guid_pcm = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHH", 0xFFFE, 1, 8000, 16000, 2, 16) + struct.pack("<HHI", 22, 16, 4) + guid_pcm
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 5) + b"abcde\0"  # odd size: padded
    body += b"data" + struct.pack("<I", 0xFFFFFFFF) + pcm  # a streaming server's unknown size
    data = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + body
    result = store(tmp_path, cut(data, 5), output_format="wav", rate=16000)
    read, rate = sf.read(result.path, dtype="int16")
    assert rate == 8000
    np.testing.assert_array_equal(read, samples)


# --- failures leave nothing ----------------------------------------------------------


@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
@pytest.mark.parametrize("file_format", FILE_FORMATS)
def test_abort_leaves_nothing(tmp_path: Path, output_format: str, file_format: str) -> None:
    final = tmp_path / "audio" / f"x.{AudioSink.extension_for(output_format, file_format)}"
    sink = AudioSink(final, output_format=output_format, sample_rate=RATE, file_format=file_format)
    data = encode(tone(1000), RATE, output_format)
    sink.write(data[: len(data) // 2])
    assert sink.temp_path.exists() and not final.exists()
    sink.abort()
    sink.abort()  # harmless twice
    assert leftovers(tmp_path) == []


def test_leaving_the_block_without_commit_aborts(tmp_path: Path) -> None:
    final = tmp_path / "audio" / "x.wav"
    with pytest.raises(ConnectionError), AudioSink(final, output_format="pcm", sample_rate=RATE) as sink:
        sink.write(b"\1\2\3\4")
        raise ConnectionError("cut")
    with AudioSink(final, output_format="pcm", sample_rate=RATE) as sink:
        sink.write(b"\1\2")
    assert leftovers(tmp_path) == []


def test_committed_file_appears_whole_with_no_temp_left(tmp_path: Path) -> None:
    final = tmp_path / "audio" / "x.wav"
    samples = tone(2000)
    with AudioSink(final, output_format="pcm", sample_rate=RATE) as sink:
        sink.write(samples.tobytes())
        assert not final.exists()
        assert sink.temp_path.name.startswith(".x.wav.") and sink.temp_path.name.endswith(".part")
        result = sink.commit()
    assert leftovers(tmp_path) == ["x.wav"]
    assert result.path == final
    np.testing.assert_array_equal(sf.read(final, dtype="int16")[0], samples)


def test_commit_replaces_an_older_file(tmp_path: Path) -> None:
    first = store(tmp_path, [tone(100).tobytes()], output_format="pcm")
    second = store(tmp_path, [tone(300).tobytes()], output_format="pcm")
    assert first.path == second.path and sf.info(str(second.path)).frames == 300
    assert leftovers(tmp_path) == ["row.wav"]


def test_audio_goes_to_disk_as_it_arrives(tmp_path: Path) -> None:
    for output_format, file_format in [("pcm", "wav"), ("pcm", "raw"), ("ulaw", "wav"), ("mp3", "wav")]:
        sink = AudioSink(
            tmp_path / f"x.{output_format}.bin",
            output_format=output_format,
            sample_rate=RATE,
            file_format=file_format,
        )
        chunk = bytes(range(256)) * 256  # 64 KiB of (nonsense) audio
        for _ in range(32):
            sink.write(chunk)
        assert sink.temp_path.stat().st_size >= 31 * len(chunk), (output_format, file_format)
        sink.abort()


@pytest.mark.parametrize("file_format", FILE_FORMATS)
def test_pcm_ending_mid_sample_fails_and_leaves_nothing(tmp_path: Path, file_format: str) -> None:
    final = tmp_path / "x.wav"
    sink = AudioSink(final, output_format="pcm", sample_rate=RATE, file_format=file_format)
    sink.write(b"\1\2\3")
    with pytest.raises(MalformedAudio) as caught:
        sink.commit()
    assert isinstance(caught.value, StreamIncomplete)  # the runner treats it as a failed attempt
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "data",
    [
        b"ID3\3\0\0\0\0\0\0 not a wav",  # not RIFF at all
        b"RIFF\0\0\0\0WAVX",  # not WAVE
        encode(tone(10), RATE, "wav")[:30],  # ends inside the header
        b"RIFF\x24\0\0\0WAVEdata\0\0\0\0",  # data before fmt
    ],
)
def test_bad_wav_streams_fail(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(MalformedAudio):
        store(tmp_path, [data], output_format="wav")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("channels", "subtype"), [(2, "PCM_16"), (1, "FLOAT"), (1, "PCM_24")])
def test_wav_that_is_not_16_bit_mono_fails(tmp_path: Path, channels: int, subtype: str) -> None:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((10, channels)), RATE, format="WAV", subtype=subtype)
    with pytest.raises(MalformedAudio, match="16-bit mono"):
        store(tmp_path, [buffer.getvalue()], output_format="wav")
    assert leftovers(tmp_path) == []


def test_later_wav_header_with_another_rate_fails(tmp_path: Path) -> None:
    chunks = [encode(tone(10), 16000, "wav"), encode(tone(10), 24000, "wav")]
    with pytest.raises(MalformedAudio, match="rate"):
        store(tmp_path, chunks, output_format="wav")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("output_format", ["pcm", "wav", "ulaw"])
def test_an_empty_stream_makes_an_empty_playable_file(tmp_path: Path, output_format: str) -> None:
    result = store(tmp_path, [], output_format=output_format)
    info = sf.info(str(result.path))
    assert info.frames == 0 and info.samplerate == RATE
    assert result.audio_seconds == 0 and result.audio_bytes == 0


def test_no_writes_after_commit(tmp_path: Path) -> None:
    sink = AudioSink(tmp_path / "x.wav", output_format="pcm", sample_rate=RATE)
    sink.commit()
    with pytest.raises(RuntimeError):
        sink.write(b"\0\0")
    with pytest.raises(RuntimeError):
        sink.commit()
    sink.abort()  # no-op after commit
    assert (tmp_path / "x.wav").exists()


# --- the event loop's share: no sync, no file before the audio ----------------------------


@pytest.mark.parametrize("output_format", ("pcm", "wav"))
def test_a_wav_is_byte_for_byte_what_libsndfile_writes(tmp_path: Path, output_format: str) -> None:
    """The sink writes 16-bit WAVs itself now; the files are the ones libsndfile made before."""
    samples = tone(3001)
    result = store(tmp_path, cut(encode(samples, 22050, output_format), 777), output_format=output_format, rate=22050)
    reference = io.BytesIO()
    with sf.SoundFile(reference, "w", samplerate=22050, channels=1, format="WAV", subtype="PCM_16") as out:
        out.write(samples)
    assert result.path.read_bytes() == reference.getvalue()


@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
@pytest.mark.parametrize("file_format", FILE_FORMATS)
def test_finishing_a_file_never_syncs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output_format: str, file_format: str
) -> None:
    """finish() runs on the event loop, in the stream slot: no fsync there (the group commit syncs).

    ``SoundFile.close()`` calls ``flush()``, libsndfile's ``sf_write_sync``: an fsync that held
    the next request back by up to 200 ms on a 1-stream account.
    """

    data = encode(tone(1000), RATE, output_format)  # before the patches: encode() closes a SoundFile
    synced: list[object] = []

    def refuse(*args: object) -> None:
        synced.append(args)

    monkeypatch.setattr(sf.SoundFile, "flush", refuse)
    monkeypatch.setattr(os, "fsync", refuse)
    monkeypatch.setattr(os, "fdatasync", refuse)
    final = tmp_path / f"x.{AudioSink.extension_for(output_format, file_format)}"
    sink = AudioSink(final, output_format=output_format, sample_rate=RATE, file_format=file_format)
    sink.write(data)
    sink.finish()
    sink.abort()
    assert synced == []


def test_the_temporary_file_is_made_at_the_first_audio(tmp_path: Path) -> None:
    """Not before the request: making a file can wait on the file system's journal."""
    sink = AudioSink(tmp_path / "x.wav", output_format="pcm", sample_rate=RATE)
    assert leftovers(tmp_path) == []
    sink.abort()  # nothing to remove
    sink = AudioSink(tmp_path / "x.wav", output_format="ulaw", sample_rate=RATE)
    assert leftovers(tmp_path) == []
    sink.write(b"\x01\x02")
    assert [p.name for p in tmp_path.iterdir()] == [sink.temp_path.name]
    sink.abort()
    assert leftovers(tmp_path) == []


# --- names ---------------------------------------------------------------------------


def test_extensions() -> None:
    table = {(of, ff): AudioSink.extension_for(of, ff) for of in OUTPUT_FORMATS for ff in FILE_FORMATS}
    assert table == {
        ("pcm", "wav"): "wav", ("pcm", "flac"): "flac", ("pcm", "raw"): "pcm",
        ("wav", "wav"): "wav", ("wav", "flac"): "flac", ("wav", "raw"): "pcm",
        ("mp3", "wav"): "mp3", ("mp3", "flac"): "mp3", ("mp3", "raw"): "mp3",
        ("ulaw", "wav"): "wav", ("ulaw", "flac"): "flac", ("ulaw", "raw"): "ulaw",
        ("alaw", "wav"): "wav", ("alaw", "flac"): "flac", ("alaw", "raw"): "alaw",
    }  # fmt: skip
    assert AudioSink.extension_for("pcm") == "wav"
    with pytest.raises(ValueError):
        AudioSink.extension_for("ogg", "wav")
    with pytest.raises(ValueError):
        AudioSink.extension_for("pcm", "mp3")


def test_bad_arguments_create_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        AudioSink(tmp_path / "x.wav", output_format="pcm", sample_rate=0)
    with pytest.raises(ValueError):
        AudioSink(tmp_path / "x.wav", output_format="opus", sample_rate=RATE)
    assert leftovers(tmp_path) == []


def test_remove_stale_temp_files(tmp_path: Path) -> None:
    keep = ["audio/a.wav", "audio/.hidden", "audio/b.part", "audio/.c.wav.part", "results.parquet"]
    for name in keep:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    stale = []
    for name in ["a.wav", "weird~0123456789abcdef.flac", "nested/b.mp3"]:
        fd, temp = create_temp_file(tmp_path / "audio" / name)
        os.close(fd)
        stale.append(temp)
    crashed = AudioSink(tmp_path / "audio" / "c.wav", output_format="pcm", sample_rate=RATE)
    crashed.write(b"\0\0")  # never committed nor aborted: as after a crash
    assert remove_stale_temp_files(tmp_path) == 4
    assert not any(t.exists() for t in stale) and not crashed.temp_path.exists()
    assert all((tmp_path / name).exists() for name in keep)
    assert remove_stale_temp_files(tmp_path) == 0
    crashed.abort()  # only closes its file now
