"""The object store interface (batchtts.storage.objects) against moto's real S3 server on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchtts.errors import UsageError
from batchtts.storage import objects
from batchtts.storage.objects import ObjectStore, PreconditionFailed, object_url, parse_storage_options
from tests.s3_support import S3Server


def test_urls_are_recognised_as_typed_or_as_a_path_left_them() -> None:
    assert object_url("s3://bucket/a/b.csv") == "s3://bucket/a/b.csv"
    assert object_url(Path("s3://bucket/a/b.csv")) == "s3://bucket/a/b.csv"  # pathlib folds the //
    assert object_url("gs://b/x.parquet") == "gs://b/x.parquet"
    assert object_url("out/audio") is None
    assert object_url("http://example.com/x.csv") is None


def test_storage_options_parse_and_say_what_is_wrong() -> None:
    # s3fs-style names (and AWS_ prefixes) are taken too, as obstore's S3 config keys.
    assert parse_storage_options(["anon=true", "endpoint_url=http://h:9000", "AWS_REGION=eu-west-1"]) == {
        "skip_signature": True,
        "endpoint": "http://h:9000",
        "region": "eu-west-1",
    }
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_storage_options(["endpoint_url"])


def test_a_conditional_create_never_replaces_and_if_match_replaces_only_what_was_read(s3: S3Server) -> None:
    bucket = s3.bucket("unit-cond")
    store = ObjectStore(f"s3://{bucket}/p")
    etag = store.write("a/x", b"one", create=True, metadata={"batchtts-id": "x"})
    with pytest.raises(PreconditionFailed):
        store.write("a/x", b"two", create=True)
    with pytest.raises(PreconditionFailed):
        store.write("a/x", b"two", if_match='"not-the-etag"')
    store.write("a/x", b"three", if_match=etag)
    assert s3.get(bucket, "p/a/x") == b"three"
    assert store.metadata("a/x") == {}  # a replacement carries its own metadata
    assert [(item.path, item.size) for item in store.list()] == [("a/x", 5)]
    assert store.read("a/missing") is None


def test_a_large_file_goes_up_in_parts_appears_whole_and_only_if_absent(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objects, "MULTIPART_THRESHOLD", 6 << 20)
    monkeypatch.setattr(objects, "PART_SIZE", 5 << 20)  # S3's smallest part
    bucket = s3.bucket("unit-multipart")
    store = ObjectStore(f"s3://{bucket}/")
    data = bytes(range(256)) * (45_000)  # ~11 MB: three parts
    local = tmp_path / "big.wav"
    local.write_bytes(data)
    store.upload(local, "audio/big.wav", create=True, metadata={"batchtts-fingerprint": "f" * 32})
    assert s3.get(bucket, "audio/big.wav") == data
    assert store.metadata("audio/big.wav")["batchtts-fingerprint"] == "f" * 32
    with pytest.raises(PreconditionFailed):
        store.upload(local, "audio/big.wav", create=True)
    assert s3.versions(bucket)["audio/big.wav"] == 1
    assert not s3.client.list_multipart_uploads(Bucket=bucket).get("Uploads")  # the refused one was aborted


def test_without_obstore_an_s3_output_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "obstore.store", None)  # as if the s3 extra were not installed
    with pytest.raises(UsageError, match=r"needs obstore: pip install 'batchtts\[s3\]'"):
        ObjectStore("s3://bucket/prefix/")
