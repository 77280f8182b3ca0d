"""Object storage: ``s3://`` (and ``gs://``, ``az://`` for reading) through fsspec, behind one small interface.

Why fsspec + s3fs (see ``docs/dependencies.md``): s3fs talks to S3 through
botocore, so credentials and the endpoint come from where every AWS tool
takes them (``AWS_ACCESS_KEY_ID``..., ``AWS_PROFILE``, ``~/.aws/config``,
``AWS_ENDPOINT_URL``); its raw client takes ``IfNoneMatch``/``IfMatch`` on
``PutObject`` and ``CompleteMultipartUpload`` (conditional writes), and its
files read in bounded blocks (streamed manifests). gcsfs and adlfs give
``gs://`` and ``az://`` manifests through the same interface when installed.

:class:`ObjectStore` is everything a job does to a store: read a file as a
stream, list, read an object's metadata, write an object whole (created only
if absent, or replaced only if unchanged since read), delete. Paths given to
it are relative to its root (``s3://bucket/prefix/``), with ``/``: the same
relative paths as inside a local ``--out`` folder (:mod:`batchtts.storage.names`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from batchtts.errors import UsageError

#: URL schemes read through fsspec, and the package each needs.
SCHEMES: dict[str, str] = {
    "s3": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}
#: Where the package for a scheme comes from (the error says this when it is missing).
INSTALL_HINT = {"s3fs": "pip install 'batchtts[s3]'", "gcsfs": "pip install gcsfs", "adlfs": "pip install adlfs"}
#: ``s3://b/k`` as given, or as pathlib leaves it (``s3:/b/k``: a Path folds the double slash).
_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9]*):/+(?P<rest>.*)", re.DOTALL)
#: Objects up to this size go up in one PUT; larger ones in parts of :data:`PART_SIZE` (multipart upload).
MULTIPART_THRESHOLD = 16 << 20
PART_SIZE = 8 << 20
#: Read-ahead block of a streamed object (a manifest): bounds the memory a read holds.
READ_BLOCK = 4 << 20

_options: dict[str, Any] = {}


def object_url(path: str | os.PathLike[str] | None) -> str | None:
    """``scheme://rest`` when ``path`` names an object (``s3://...``, or a Path made from one), else None."""
    if path is None:
        return None
    match = _URL.fullmatch(os.fspath(path))
    if match is None or match["scheme"] not in SCHEMES:
        return None
    return f"{match['scheme']}://{match['rest']}"


def shown(path: str | os.PathLike[str]) -> str:
    """How to print a path: a URL as the user typed it, else the path."""
    return object_url(path) or os.fspath(path)


def parse_storage_options(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (``--storage-option``) as keyword arguments for the file system.

    ``true``/``false`` become booleans, so ``anon=true`` works; every other value stays text.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--storage-option {key.strip() or pair!r}: give KEY=VALUE, e.g. endpoint_url=http://...")
        lowered = value.strip().lower()
        options[key.strip()] = {"true": True, "false": False}.get(lowered, value)
    return options


def use_storage_options(options: Mapping[str, Any]) -> None:
    """The process's storage options (``--storage-option``), for every store opened after this."""
    _options.clear()
    _options.update(options)


def secret_values() -> list[str]:
    """The option values that may be key material, so output can mask them."""
    return [str(v) for k, v in _options.items() if isinstance(v, str) and re.search(r"key|secret|token|pass", k, re.I)]


def filesystem(url: str) -> Any:
    """The fsspec file system for ``url``'s scheme, with the storage options; a one-line UsageError when
    the package it needs is missing."""
    scheme = url.split("://", 1)[0]
    package = SCHEMES[scheme]
    try:
        import fsspec

        kwargs = dict(_options)
        if scheme == "s3":
            # botocore reads AWS_ENDPOINT_URL itself; only an explicit option overrides it.
            kwargs.setdefault("skip_instance_cache", True)
        return fsspec.filesystem(scheme, **kwargs)
    except ImportError:
        raise UsageError(f"{url}: reading {scheme}:// needs {package}: {INSTALL_HINT[package]}") from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{url}: bad --storage-option: {exc}") from None


#: ``--storage-option`` names pyarrow's own S3 client understands (its argument for each).
ARROW_S3_OPTIONS = {"endpoint_url": "endpoint_override", "key": "access_key", "secret": "secret_key",
                    "token": "session_token", "anon": "anonymous", "region": "region"}  # fmt: skip


def arrow_s3() -> Any | None:
    """pyarrow's S3 file system for reading manifests, or None when an option needs s3fs.

    Manifests are read with pyarrow's own S3 client, not s3fs: it is already
    loaded with pyarrow, so a manifest read from s3:// costs ~10 MB more than a
    local one instead of ~50 MB for botocore and aiohttp. It ignores
    ``AWS_ENDPOINT_URL`` (apache/arrow#49643), so that is read here.
    """
    if any(name not in ARROW_S3_OPTIONS for name in _options):
        return None
    import pyarrow.fs as pafs

    kwargs = {ARROW_S3_OPTIONS[name]: value for name, value in _options.items()}
    endpoint = (
        kwargs.pop("endpoint_override", None)
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    if endpoint:
        scheme, _, rest = str(endpoint).partition("://")
        kwargs["endpoint_override"], kwargs["scheme"] = (rest, scheme) if rest else (scheme, "https")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region and "region" not in kwargs:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def open_object(path: str | os.PathLike[str]) -> Any:
    """An object opened for streamed reading (pyarrow's S3 reads on demand; fsspec in blocks of
    :data:`READ_BLOCK`); FileNotFoundError when absent."""
    url = object_url(path)
    assert url is not None
    if url.startswith("s3://") and (arrow := arrow_s3()) is not None:
        return arrow.open_input_file(url.removeprefix("s3://"))
    fs = filesystem(url)
    return fs.open(url, "rb", block_size=READ_BLOCK, cache_type="readahead")


def object_exists(path: str | os.PathLike[str]) -> bool:
    """Whether the object is there (an OSError when the store cannot be asked: no bucket, no access)."""
    url = object_url(path)
    assert url is not None
    if url.startswith("s3://") and (arrow := arrow_s3()) is not None:
        import pyarrow.fs as pafs

        return bool(arrow.get_file_info(url.removeprefix("s3://")).type == pafs.FileType.File)
    fs = filesystem(url)
    try:
        info = fs.info(url)
    except FileNotFoundError:
        return False
    return bool(info.get("type") == "file")


@dataclass(frozen=True, slots=True)
class Listed:
    """One object under the store's root: its path relative to the root, size and ETag."""

    path: str
    size: int
    etag: str


class PreconditionFailed(OSError):
    """A conditional write lost: the object exists (create) or changed since it was read (replace)."""


class ObjectStore:
    """An S3 bucket prefix, ``s3://bucket/prefix/``: the job's whole output, as relative paths.

    Blocking calls (they run botocore's client on fsspec's own event loop);
    call them from a worker thread, not the job's event loop.
    """

    def __init__(self, url: str) -> None:
        scheme, _, rest = url.partition("://")
        if scheme != "s3":
            raise UsageError(f"--out {url}: only s3:// outputs are supported (manifests may be {scheme}://)")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise UsageError(f"--out {url}: no bucket; give s3://BUCKET/PREFIX/")
        self.url = f"s3://{bucket}/{prefix.strip('/')}/" if prefix.strip("/") else f"s3://{bucket}/"
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._fs = filesystem(url)

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    def key(self, relative: str | PurePosixPath) -> str:
        rel = PurePosixPath(relative)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"{str(relative)!r} is not a path inside {self.url}")
        return self.prefix + rel.as_posix()

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from fsspec.asyn import sync

        return sync(self._fs.loop, self._fs._call_s3, operation, Bucket=self.bucket, **kwargs)

    # --- reading --------------------------------------------------------------------

    def list(self, relative: str = "") -> Iterator[Listed]:
        """Every object under ``relative`` (a folder, ``""`` for the whole root), in key order."""
        prefix = self.prefix + relative
        token: str | None = None
        while True:
            page = self._call("list_objects_v2", Prefix=prefix, **({"ContinuationToken": token} if token else {}))
            for item in page.get("Contents", ()):
                yield Listed(item["Key"][len(self.prefix) :], int(item["Size"]), str(item.get("ETag", "")))
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def metadata(self, relative: str) -> dict[str, str]:
        """The object's user metadata (``x-amz-meta-*``, names lower-case)."""
        head = self._call("head_object", Key=self.key(relative))
        return {str(k).lower(): str(v) for k, v in head.get("Metadata", {}).items()}

    def read(self, relative: str) -> tuple[bytes, str] | None:
        """A small object's bytes and ETag, or None when it is absent."""
        try:
            answer = self._call("get_object", Key=self.key(relative))
        except FileNotFoundError:
            return None
        from fsspec.asyn import sync

        async def body() -> bytes:
            async with answer["Body"] as stream:
                data: bytes = await stream.read()
                return data

        return sync(self._fs.loop, body), str(answer.get("ETag", ""))

    # --- writing --------------------------------------------------------------------

    def write(
        self,
        relative: str,
        data: bytes,
        *,
        create: bool = False,
        if_match: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Put ``data`` whole; return its ETag. ``create``: only if absent; ``if_match``: only if unchanged.

        Raises :class:`PreconditionFailed` when the condition does not hold.
        """
        conditions = _conditions(create, if_match)
        try:
            answer = self._call("put_object", Key=self.key(relative), Body=data, Metadata=dict(metadata or {}),
                                **conditions)  # fmt: skip
        except (FileExistsError, OSError) as exc:
            raise _precondition(exc, relative) from None
        return str(answer.get("ETag", ""))

    def upload(
        self,
        local: Path,
        relative: str,
        *,
        create: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """A finished local file to ``relative``, whole or not at all: one PUT, or a multipart upload
        whose parts are invisible until it completes (and is aborted on any failure)."""
        size = local.stat().st_size
        if size <= MULTIPART_THRESHOLD:
            self.write(relative, local.read_bytes(), create=create, metadata=metadata)
            return
        key = self.key(relative)
        upload = self._call("create_multipart_upload", Key=key, Metadata=dict(metadata or {}))
        upload_id = upload["UploadId"]
        try:
            parts = []
            with local.open("rb") as handle:
                number = 1
                while chunk := handle.read(PART_SIZE):
                    part = self._call("upload_part", Key=key, UploadId=upload_id, PartNumber=number, Body=chunk)
                    parts.append({"PartNumber": number, "ETag": part["ETag"]})
                    number += 1
            try:
                self._call("complete_multipart_upload", Key=key, UploadId=upload_id,
                           MultipartUpload={"Parts": parts}, **_conditions(create, None))  # fmt: skip
            except (FileExistsError, OSError) as exc:
                raise _precondition(exc, relative) from None
        except BaseException:
            # If even this fails, the bucket's lifecycle rule for incomplete uploads is the last resort.
            with contextlib.suppress(OSError):
                self._call("abort_multipart_upload", Key=key, UploadId=upload_id)
            raise

    def delete(self, relative: str) -> None:
        self._call("delete_object", Key=self.key(relative))

    def check(self) -> None:
        """Prove the bucket answers (a one-line UsageError saying why not), before any request is paid for."""
        try:
            self._call("list_objects_v2", Prefix=self.prefix, MaxKeys=1)
        except FileNotFoundError:
            raise UsageError(f"--out {self.url}: no such bucket {self.bucket!r}") from None
        except PermissionError as exc:
            raise UsageError(f"--out {self.url}: access denied ({_reason(exc)}); check the credentials") from None
        except OSError as exc:
            raise UsageError(f"--out {self.url}: cannot use the bucket: {_reason(exc)}") from None
        except Exception as exc:  # botocore: no credentials, an unreachable endpoint
            raise UsageError(f"--out {self.url}: cannot reach the store: {_reason(exc)}") from None


def _conditions(create: bool, if_match: str | None) -> dict[str, str]:
    if create:
        return {"IfNoneMatch": "*"}
    if if_match is not None:
        return {"IfMatch": if_match}
    return {}


def _precondition(exc: OSError, relative: str) -> OSError:
    """s3fs turns a 412 into FileExistsError (If-None-Match) or EINVAL (If-Match)."""
    if isinstance(exc, FileExistsError) or "pre-condition" in str(exc) or "Precondition" in str(exc):
        return PreconditionFailed(f"{relative}: changed or created by someone else")
    return exc


def _reason(exc: BaseException) -> str:
    """An error's message on one line, without anything that looks like key material."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for secret in secret_values():
        text = text.replace(secret, "********")
    return text[:300]
