"""Ids become file names that stay inside the output folder and never collide."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchtts.storage.files import create_temp_file, remove_stale_results_temp
from batchtts.storage.names import (
    AUDIO_DIR,
    HASH_SEPARATOR,
    TEMP_NAME,
    audio_file_stem,
    id_hash,
    is_safe_id,
    relative_audio_path,
    resolve_inside,
)

HOSTILE_IDS = [
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    ".",
    "..",
    "...",
    "",
    " ",
    "a/b",
    "a\\b",
    "..\\..\\windows\\system32",
    "C:\\evil",
    "nul\0byte",
    "\0",
    "CON",
    "con",
    "con.txt",
    "Nul",
    "com1",
    "lpt9",
    "aux",
    "prn",
    "trailing.",
    ".hidden",
    "-",
    "~",
    "x~0123456789abcdef",
    "naïve café",
    "日本語のテキスト",
    "emoji 🎙️🔊",
    "\ud800lone surrogate",
    "tab\tnewline\n",
    "x" * 10_000,
    "é" * 10_000,
    "a.part",
    ".a.wav.abcdefgh.part",
]


@pytest.mark.parametrize("row_id", ["take-01", "row_1", "a", "0", "v1.2.3", "x" * 100, "-leading-dash", "_"])
def test_safe_ids_keep_their_name(row_id: str) -> None:
    assert is_safe_id(row_id)
    assert relative_audio_path(row_id, "wav") == PurePosixPath("audio", f"{row_id}.wav")


@pytest.mark.parametrize("row_id", ["Take-01", "x" * 101, "a b", "trailing.", ".hidden", "con", "com1.x", "a~b"])
def test_unsafe_ids_get_a_prefix_and_the_hash(row_id: str) -> None:
    assert not is_safe_id(row_id)
    stem = audio_file_stem(row_id)
    prefix, separator, digest = stem.rpartition(HASH_SEPARATOR)
    assert separator == HASH_SEPARATOR and digest == id_hash(row_id)
    assert prefix and len(prefix) <= 40


def test_mangled_names_stay_readable() -> None:
    assert audio_file_stem("../etc/passwd") == f"etc_passwd~{id_hash('../etc/passwd')}"
    assert audio_file_stem("Take 1") == f"Take_1~{id_hash('Take 1')}"
    assert audio_file_stem("naïve café").startswith("naive_cafe~")
    assert audio_file_stem("🎙️").startswith("_~")


def test_hash_is_plain_sha256_of_utf8() -> None:
    import hashlib

    assert id_hash("Ünïcode") == hashlib.sha256("Ünïcode".encode()).hexdigest()[:16]


@pytest.mark.parametrize("row_id", HOSTILE_IDS)
def test_hostile_ids_stay_in_the_audio_folder(row_id: str, tmp_path: Path) -> None:
    relative = relative_audio_path(row_id, "wav")
    assert relative.parent == AUDIO_DIR
    name = relative.name
    assert name.endswith(".wav") and len(name.encode()) <= 120
    assert not name.startswith(".") and "/" not in name and "\\" not in name and "\0" not in name
    assert name.isascii() and name.isprintable()
    target = resolve_inside(tmp_path, relative)
    assert target.parent == tmp_path / "audio"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(b"x")  # the name is really creatable
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == [name]


def test_hostile_ids_never_collide() -> None:
    names = [relative_audio_path(row_id, "wav") for row_id in HOSTILE_IDS]
    assert len(set(names)) == len(HOSTILE_IDS)
    assert len({str(n).casefold() for n in names}) == len(HOSTILE_IDS)


def test_case_variants_differ_even_case_insensitively() -> None:
    names = {relative_audio_path(row_id, "wav").name.casefold() for row_id in ["abc", "ABC", "Abc", "aBc"]}
    assert len(names) == 4
    assert relative_audio_path("abc", "wav").name == "abc.wav"


def test_windows_device_names_are_mangled() -> None:
    for row_id in ["con", "CON", "nul", "com1", "lpt1.txt", "aux"]:
        stem = audio_file_stem(row_id)
        assert HASH_SEPARATOR in stem
        assert stem.split(".")[0].lower() not in {"con", "nul", "com1", "lpt1", "aux"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120), st.text(max_size=120))
def test_distinct_ids_map_to_distinct_paths(first: str, second: str) -> None:
    if first == second:
        return
    a, b = relative_audio_path(first, "wav"), relative_audio_path(second, "wav")
    assert a != b
    assert str(a).casefold() != str(b).casefold()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_id_resolves_inside(row_id: str) -> None:
    out_dir = Path("/srv/job-out")
    target = resolve_inside(out_dir, relative_audio_path(row_id, "flac"))
    assert target.parent == out_dir / "audio"
    assert os.path.normpath(target) == str(target)
    assert audio_file_stem(row_id) == row_id or HASH_SEPARATOR in target.name


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z0-9_-][a-z0-9._-]{0,98}[a-z0-9_-]", fullmatch=True))
def test_lowercase_ids_without_edge_dots_are_kept(row_id: str) -> None:
    if row_id.split(".")[0] in {"con", "prn", "aux", "nul"} or row_id.split(".")[0][:3] in {"com", "lpt"}:
        return
    assert audio_file_stem(row_id) == row_id


@pytest.mark.parametrize("relative", ["../x.wav", "/etc/passwd", "audio/../../x", "", ".", "a\\..\\..\\x", "audio/\0x"])
def test_resolve_inside_refuses_escapes(relative: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        resolve_inside(tmp_path, relative)


def test_resolve_inside_accepts_nested_paths(tmp_path: Path) -> None:
    assert resolve_inside(tmp_path, "audio/x.wav") == tmp_path / "audio" / "x.wav"
    assert resolve_inside(tmp_path, PurePosixPath("./audio/x.wav")) == tmp_path / "audio" / "x.wav"


def test_bad_extension_is_refused() -> None:
    for extension in ["", "../wav", "w/v", ".wav", "WAV"]:
        with pytest.raises(ValueError):
            relative_audio_path("x", extension)


def test_temp_files_are_hidden_next_to_the_target(tmp_path: Path) -> None:
    final = tmp_path / "audio" / "x.wav"
    fd, temp = create_temp_file(final)
    os.close(fd)
    assert temp.parent == final.parent and temp.exists()
    assert TEMP_NAME.fullmatch(temp.name) and temp.name.startswith(".x.wav.")
    # A finished file's name never looks like a temp name (it never starts with a dot).
    assert not TEMP_NAME.fullmatch(relative_audio_path(".x.wav.abcdefgh.part", "wav").name)


def test_stale_results_temp_files_outside_the_output_folder_are_removed(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "reports"
    out.mkdir()
    elsewhere.mkdir()
    results = elsewhere / "night.parquet"
    stale = []
    for _ in range(2):
        fd, temp = create_temp_file(results)
        os.close(fd)
        stale.append(temp)
    fd, other = create_temp_file(elsewhere / "day.parquet")  # another results file's: not ours to remove
    os.close(fd)
    keep = [other, elsewhere / ".night.parquet.part", elsewhere / "night.parquet"]
    for path in keep[1:]:
        path.write_bytes(b"x")
    assert remove_stale_results_temp(results, out) == 2
    assert not any(t.exists() for t in stale) and all(p.exists() for p in keep)
    assert remove_stale_results_temp(results, out) == 0
    inside = out / "results.parquet"  # inside DIR: remove_stale_temp_files covers it
    fd, temp = create_temp_file(inside)
    os.close(fd)
    assert remove_stale_results_temp(inside, out) == 0 and temp.exists()
    assert remove_stale_results_temp(tmp_path / "missing" / "r.parquet", out) == 0


def test_temp_files_get_ordinary_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    fd, temp = create_temp_file(tmp_path / "x.wav")
    os.close(fd)
    assert temp.stat().st_mode & 0o777 == 0o666 & ~mask
