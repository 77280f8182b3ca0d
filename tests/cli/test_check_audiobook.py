"""``batchtts check-audiobook``: chapters made to pass or to break one ACX rule each, and the verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile
from click.testing import CliRunner

from batchtts.cli import main

RATE = 44100


def voice(seconds: float, rms_db: float, *, seed: int = 1) -> np.ndarray:
    """A steady 'voice' (tones with a little noise) at an RMS of ``rms_db`` dB (full-scale peak reference)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    signal = np.sin(2 * np.pi * 200 * t) + 0.4 * np.sin(2 * np.pi * 910 * t) + 0.05 * rng.standard_normal(len(t))
    return signal / np.sqrt(np.mean(signal**2)) * 10 ** (rms_db / 20)


def room_tone(seconds: float, level_db: float = -70.0, *, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(int(seconds * RATE)) * 10 ** (level_db / 20)


def chapter(folder: Path, name: str, *pieces: np.ndarray, rate: int = RATE) -> Path:
    path = folder / name
    soundfile.write(path, np.concatenate(pieces), rate, subtype="PCM_16")
    return path


def check(*args: str):
    return CliRunner().invoke(main, ["check-audiobook", *args], catch_exceptions=False)


def test_a_compliant_chapter_passes(tmp_path):
    chapter(tmp_path, "ch01.wav", room_tone(0.7), voice(20, -19.0), room_tone(2.0))
    result = check(str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "ch01.wav" in result.output and "PASS" in result.output and "all pass" in result.output


def test_each_broken_rule_fails_its_chapter_with_the_reason(tmp_path):
    good = (room_tone(0.7), voice(12, -19.0), room_tone(2.0))
    chapter(tmp_path, "ok.wav", *good)
    chapter(tmp_path, "loud.wav", room_tone(0.7), voice(12, -15.0), room_tone(2.0))
    chapter(tmp_path, "quiet.wav", room_tone(0.7), voice(12, -30.0), room_tone(2.0))
    chapter(tmp_path, "no_tone.wav", voice(12, -19.0))
    clipped = voice(12, -19.0)
    clipped[RATE * 5 : RATE * 5 + 50] = 1.0
    chapter(tmp_path, "clipped.wav", room_tone(0.7), clipped, room_tone(2.0))
    chapter(tmp_path, "noisy.wav", room_tone(0.7, -55.0), voice(12, -19.0), room_tone(2.0, -55.0))
    chapter(tmp_path, "rate.wav", *good, rate=24000)
    result = check(str(tmp_path), "--json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.output)
    verdicts = {c["path"]: c["failures"] for c in document["chapters"]}
    assert verdicts["ok.wav"] == []
    assert document["ok"] is False and document["failing"] == len(verdicts) - 1
    assert any(f.startswith("too quiet: RMS") for f in verdicts["quiet.wav"])
    assert any(f.startswith("too loud: RMS") for f in verdicts["loud.wav"])
    assert any("room tone at head 0 s < 0.5" in f for f in verdicts["no_tone.wav"])
    assert any("room tone at tail 0 s < 1" in f for f in verdicts["no_tone.wav"])
    assert any(f.startswith("peak 0 dBFS > -3 (clipped)") for f in verdicts["clipped.wav"])
    assert any(f.startswith("noise floor") for f in verdicts["noisy.wav"])
    assert any(f.startswith("sample rate 24000") for f in verdicts["rate.wav"])
    # Each file fails for its own reason only.
    assert all(len(verdicts[name]) == 1 for name in ("quiet.wav", "loud.wav", "clipped.wav", "noisy.wav"))
    quiet = next(c for c in document["chapters"] if c["path"] == "quiet.wav")
    assert -31.5 < quiet["rms_db"] < -29.5 and 0.6 < quiet["head_seconds"] < 0.8 and 1.9 < quiet["tail_seconds"] < 2.1


def test_the_table_names_what_fails(tmp_path):
    chapter(tmp_path, "quiet.wav", room_tone(0.7), voice(5, -30.0), room_tone(2.0))
    result = check(str(tmp_path / "quiet.wav"))
    assert result.exit_code == 1
    assert "quiet.wav" in result.output and "FAIL: too quiet: RMS" in result.output


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    for target in (tmp_path / "missing", tmp_path):
        result = check(str(target))
        assert result.exit_code == 2
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1
        assert "Traceback" not in result.output


def test_a_job_folder_is_searched_but_its_state_folder_is_not(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / ".batchtts" / "parts").mkdir(parents=True)
    chapter(tmp_path / "audio", "ch01.flac", room_tone(0.7), voice(8, -19.0), room_tone(2.0))
    chapter(tmp_path / ".batchtts" / "parts", "part.wav", voice(2, -30.0))
    (tmp_path / "audio" / "broken.wav").write_bytes(b"not audio")
    document = json.loads(check(str(tmp_path), "--json").output)
    paths = {c["path"]: c for c in document["chapters"]}
    assert set(paths) == {"audio/ch01.flac", "audio/broken.wav"}
    assert paths["audio/ch01.flac"]["ok"] is True
    assert paths["audio/broken.wav"]["failures"][0].startswith("not readable audio")
