"""Object storage: ``s3://`` outputs and manifests (and ``gs://``, ``az://`` manifests), behind one small interface.

Three clients, each for what it does best (see ``docs/dependencies.md``):

- writes, listings and metadata go through obstore (Rust's ``object_store``):
  conditional puts (``If-None-Match: *`` to create, ``If-Match`` to replace what
  was read), user metadata, multipart uploads, about 0.8 ms of CPU per PUT;
- ``s3://`` manifests are read with pyarrow's own S3 client, already loaded with
  pyarrow (about 10 MB more than a local read), which streams the file on demand;
- ``gs://`` and ``az://`` manifests go through fsspec (gcsfs, adlfs) when installed.

Credentials and the endpoint come from the AWS environment (``AWS_ACCESS_KEY_ID``...,
``AWS_ENDPOINT_URL``, which pyarrow ignores, apache/arrow#49643, so it is read
here), a profile of the AWS config files (``AWS_PROFILE``, through boto3), and
``--storage-option KEY=VALUE``.

:class:`ObjectStore` is everything a job does to its output: list, read an
object's metadata, write an object whole (created only if absent, or replaced
only if unchanged since read), delete. Paths given to it are relative to its
root (``s3://bucket/prefix/``), with ``/``: the same relative paths as inside a
local ``--out`` folder (:mod:`batchtts.storage.names`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from batchtts.errors import UsageError

#: URL schemes read as manifests, and the package each needs.
SCHEMES: dict[str, str] = {
    "s3": "obstore",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}
#: Where the package for a scheme comes from (the error says this when it is missing).
INSTALL_HINT = {
    "obstore": "pip install 'batchtts[s3]'",
    "gcsfs": "pip install gcsfs",
    "adlfs": "pip install adlfs",
}
#: ``s3://b/k`` as given, or as pathlib leaves it (``s3:/b/k``: a Path folds the double slash).
_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9]*):/+(?P<rest>.*)", re.DOTALL)
#: Objects up to this size go up in one conditional PUT; larger ones as a multipart upload.
MULTIPART_THRESHOLD = 64 << 20
PART_SIZE = 8 << 20
#: Parts of one multipart upload in flight (each held in memory): bounds a large file's memory.
UPLOAD_PARTS_AT_ONCE = 2
#: Read-ahead block of a manifest read through fsspec (gs://, az://).
READ_BLOCK = 4 << 20
#: ``--storage-option`` names batchtts knows -> obstore's S3 config key. Other names go to obstore as they are.
OPTION_ALIASES = {
    "endpoint_url": "endpoint",
    "key": "access_key_id",
    "secret": "secret_access_key",
    "token": "session_token",
    "anon": "skip_signature",
}
#: obstore's S3 config key -> pyarrow's S3FileSystem argument, for reading manifests.
ARROW_S3_OPTIONS = {
    "endpoint": "endpoint_override",
    "access_key_id": "access_key",
    "secret_access_key": "secret_key",
    "session_token": "session_token",
    "region": "region",
    "skip_signature": "anonymous",
}

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
        name = key.strip().lower().removeprefix("aws_")
        options[OPTION_ALIASES.get(name, name)] = {"true": True, "false": False}.get(lowered, value)
    return options


def use_storage_options(options: Mapping[str, Any]) -> None:
    """The process's storage options (``--storage-option``), for every store opened after this."""
    _options.clear()
    _options.update(options)


def secret_values() -> list[str]:
    """The option values that may be key material, so output can mask them."""
    return [str(v) for k, v in _options.items() if isinstance(v, str) and re.search(r"key|secret|token|pass", k, re.I)]


def filesystem(url: str) -> Any:
    """The fsspec file system for a ``gs://`` or ``az://`` URL; a one-line UsageError when its package is missing."""
    scheme = url.split("://", 1)[0]
    package = SCHEMES[scheme]
    try:
        import fsspec

        return fsspec.filesystem(scheme, **_options)
    except ImportError:
        raise UsageError(f"{url}: reading {scheme}:// needs {package}: {INSTALL_HINT[package]}") from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{url}: bad --storage-option: {exc}") from None


def endpoint() -> str | None:
    """The S3 endpoint: ``--storage-option endpoint=...``, else ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``."""
    value = _options.get("endpoint") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return str(value) if value else None


def arrow_s3() -> Any:
    """pyarrow's S3 file system, for reading manifests (it ignores ``AWS_ENDPOINT_URL``: read here)."""
    import pyarrow.fs as pafs

    kwargs = {ARROW_S3_OPTIONS[name]: value for name, value in _options.items() if name in ARROW_S3_OPTIONS}
    kwargs.pop("endpoint_override", None)
    url = endpoint()
    if url:
        scheme, _, rest = url.partition("://")
        kwargs["endpoint_override"], kwargs["scheme"] = (rest.rstrip("/"), scheme) if rest else (scheme, "https")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region and "region" not in kwargs:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def open_object(path: str | os.PathLike[str]) -> Any:
    """An object opened for streamed reading (pyarrow's S3 reads on demand; fsspec in blocks of
    :data:`READ_BLOCK`); FileNotFoundError when absent."""
    url = object_url(path)
    assert url is not None
    if url.startswith("s3://"):
        return arrow_s3().open_input_file(url.removeprefix("s3://"))
    fs = filesystem(url)
    return fs.open(url, "rb", block_size=READ_BLOCK, cache_type="readahead")


def object_exists(path: str | os.PathLike[str]) -> bool:
    """Whether the object is there (an OSError when the store cannot be asked: no bucket, no access)."""
    url = object_url(path)
    assert url is not None
    if url.startswith("s3://"):
        import pyarrow.fs as pafs

        return bool(arrow_s3().get_file_info(url.removeprefix("s3://")).type == pafs.FileType.File)
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

    Blocking calls (obstore's synchronous API releases the GIL while it waits);
    call them from a worker thread, not the job's event loop.
    """

    def __init__(self, url: str) -> None:
        scheme, _, rest = url.partition("://")
        if scheme != "s3":
            raise UsageError(f"--out {url}: only s3:// outputs are supported (manifests may be {scheme}://)")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise UsageError(f"--out {url}: no bucket; give s3://BUCKET/PREFIX/")
        prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{prefix}/" if prefix else f"s3://{bucket}/"
        self.bucket = bucket
        self._store = _s3_store(bucket, prefix)

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    @staticmethod
    def key(relative: str | PurePosixPath) -> str:
        rel = PurePosixPath(relative)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"{str(relative)!r} is not a path inside the output prefix")
        return rel.as_posix()

    # --- reading --------------------------------------------------------------------

    def list(self, relative: str = "") -> Iterator[Listed]:
        """Every object under ``relative`` (a folder, ``""`` for the whole root)."""
        import obstore

        for batch in obstore.list(self._store, prefix=relative or None):
            for meta in batch:
                yield Listed(str(meta["path"]), int(meta["size"]), str(meta.get("e_tag") or ""))

    def metadata(self, relative: str) -> dict[str, str]:
        """The object's user metadata (``x-amz-meta-*``)."""
        import obstore

        answer = obstore.get(self._store, self.key(relative), options={"head": True})
        return {str(k).lower(): str(v) for k, v in answer.attributes.items() if str(k).startswith("batchtts-")}

    def read(self, relative: str) -> tuple[bytes, str] | None:
        """A small object's bytes and ETag, or None when it is absent."""
        import obstore

        try:
            answer = obstore.get(self._store, self.key(relative))
        except FileNotFoundError:
            return None
        return bytes(answer.bytes()), str(answer.meta.get("e_tag") or "")

    # --- writing --------------------------------------------------------------------

    def write(
        self,
        relative: str,
        data: bytes | Path,
        *,
        create: bool = False,
        if_match: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Put ``data`` whole; return its ETag. ``create``: only if absent; ``if_match``: only if unchanged.

        Raises :class:`PreconditionFailed` when the condition does not hold.
        """
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        mode: Any = "create" if create else ({"e_tag": if_match} if if_match is not None else "overwrite")
        try:
            answer = obstore.put(self._store, self.key(relative), data, mode=mode,
                                 attributes=dict(metadata or {}), use_multipart=False)  # fmt: skip
        except (AlreadyExistsError, PreconditionError):
            raise PreconditionFailed(f"{relative}: changed or created by someone else") from None
        return str(answer.get("e_tag") or "")

    def upload(
        self,
        local: Path,
        relative: str,
        *,
        create: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> int:
        """A finished local file to ``relative``, whole or not at all; returns its size.

        Up to :data:`MULTIPART_THRESHOLD`: one conditional PUT. Larger: a multipart
        upload, invisible until it completes (S3 has no conditional multipart in
        obstore), after a check that the object is absent when ``create`` (the
        prefix's lock keeps other batchtts runs out meanwhile).
        """
        size = local.stat().st_size
        if size <= MULTIPART_THRESHOLD:
            self.write(relative, local, create=create, metadata=metadata)
            return size
        import obstore

        if create and self.exists(relative):
            raise PreconditionFailed(f"{relative}: changed or created by someone else")
        obstore.put(self._store, self.key(relative), local, attributes=dict(metadata or {}), use_multipart=True,
                    chunk_size=PART_SIZE, max_concurrency=UPLOAD_PARTS_AT_ONCE)  # fmt: skip
        return size

    def exists(self, relative: str) -> bool:
        import obstore

        try:
            obstore.head(self._store, self.key(relative))
        except FileNotFoundError:
            return False
        return True

    def delete(self, relative: str) -> None:
        import obstore

        obstore.delete(self._store, self.key(relative))

    def check(self) -> None:
        """Prove the bucket answers (a one-line UsageError saying why not), before any request is paid for."""
        import obstore

        try:
            next(iter(obstore.list(self._store, chunk_size=1)), None)
        except Exception as exc:  # no bucket, refused credentials, an unreachable endpoint, a bad option
            text = str(exc)
            if isinstance(exc, FileNotFoundError) or "NoSuchBucket" in text:
                raise UsageError(f"--out {self.url}: no such bucket {self.bucket!r}") from None
            if isinstance(exc, PermissionError) or any(code in text for code in _REFUSED):
                code = next((c for c in _REFUSED if c in text), "refused")
                raise UsageError(f"--out {self.url}: access denied ({code}); check the credentials") from None
            raise UsageError(f"--out {self.url}: cannot use the bucket: {_reason(exc)}") from None


#: S3's error codes for credentials it refuses.
_REFUSED = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken")


def _s3_store(bucket: str, prefix: str) -> Any:
    """obstore's S3 store over ``bucket/prefix``, configured from the environment and the storage options."""
    try:
        from obstore.store import S3Store
    except ImportError:
        raise UsageError(f"s3://{bucket}/: writing to s3:// needs obstore: {INSTALL_HINT['obstore']}") from None
    config: Any = {name: (str(value).lower() if isinstance(value, bool) else value) for name, value in _options.items()}
    url = endpoint()
    if url:
        config["endpoint"] = url
    client_options: Any = {"allow_http": True} if url and url.startswith("http://") else {}
    if not (url and url.startswith("http://")):
        # Over TLS, as the AWS SDKs do for S3: no SHA-256 of each body in the signature (TLS keeps it whole).
        config.setdefault("unsigned_payload", "true")
    kwargs: dict[str, Any] = {}
    if _use_profile(config):
        from obstore.auth.boto3 import Boto3CredentialProvider

        kwargs["credential_provider"] = Boto3CredentialProvider()
        config.setdefault("region", kwargs["credential_provider"].config.get("region") or "us-east-1")
    try:
        return S3Store(bucket, prefix=prefix or None, config=config, client_options=client_options, **kwargs)
    except Exception as exc:  # an unknown option name, a bad value
        raise UsageError(f"s3://{bucket}/: bad --storage-option: {_reason(exc)}") from None


def _use_profile(config: Mapping[str, Any]) -> bool:
    """No key in the environment or the options, but an AWS profile or config file: boto3 resolves it."""
    if "access_key_id" in config or os.environ.get("AWS_ACCESS_KEY_ID") or config.get("skip_signature") == "true":
        return False
    files = [os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"), os.environ.get("AWS_SHARED_CREDENTIALS_FILE",
             "~/.aws/credentials")]  # fmt: skip
    if not (os.environ.get("AWS_PROFILE") or any(os.path.isfile(os.path.expanduser(f)) for f in files)):
        return False
    try:
        import boto3  # noqa: F401
    except ImportError:
        return False
    return True


def _reason(exc: BaseException) -> str:
    """An error's message on one line, without anything that looks like key material."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for secret in secret_values():
        text = text.replace(secret, "********")
    return text[:300]
