"""The library entry point: a :class:`Job` from a :class:`JobSpec`, run against the API or the local server.

The command line is a thin layer over this (it parses options into a spec
and maps the summary to an exit code); a notebook or an Airflow
``PythonOperator`` calls it directly::

    from batchtts import JobSpec, run_job

    summary = run_job(JobSpec(manifest="lines.csv", out_dir="out"), local=True)
    assert summary.failed == 0

Errors a person can fix raise :class:`~batchtts.errors.UsageError` (bad
results path, no key, a folder in use) or :class:`~batchtts.errors.ManifestError`
(an unreadable manifest, a missing column) before any request is sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from batchtts.api.endpoint import KEY_ENV, LOCAL_KEY
from batchtts.errors import UsageError
from batchtts.job.progress import ProgressReporter
from batchtts.job.spec import JobSpec
from batchtts.ledger import JobSummary, results_format
from batchtts.manifest.readers import Manifest, open_manifest

if TYPE_CHECKING:
    from batchtts.api.client import WavesClient
    from batchtts.job.objectout import ObjectOutput
    from batchtts.schedule.throttle import Throttle

log = logging.getLogger("batchtts")
#: Told when the local server is up: (event name, message, fields).
Announce = Callable[..., None]


class RunOptions(TypedDict, total=False):
    """Where and how :meth:`Job.run` runs: the API with a key, or the local server; who watches."""

    api_key: str | None
    local: bool
    engine: str
    progress: ProgressReporter | None
    announce: Announce | None


class Job:
    """A job whose outputs and manifest were checked; nothing has been sent yet.

    ``Job(spec)`` reads the manifest's schema and checks the columns the
    options name, so a bad manifest is reported before any key is read or
    server started. :meth:`run` (or :meth:`run_async` inside an event loop)
    does the work and returns the :class:`JobSummary`.
    """

    def __init__(self, spec: JobSpec, *, manifest: Manifest | None = None) -> None:
        from batchtts.storage.objects import use_storage_options

        use_storage_options(spec.storage_options)
        #: ``--out s3://...``: the job writes a scratch folder that is moved to the store as it goes.
        self.output = object_output(spec)
        if self.output is not None:
            spec = dataclasses.replace(spec, out_dir=self.output.scratch)
        self.spec = spec
        try:
            results_format(spec.results)
            self.manifest = manifest or open_manifest(spec.manifest, text_column=spec.text_column,
                                                      id_column=spec.id_column, dialect=spec.dialect)  # fmt: skip
            spec.shape.check_columns(self.manifest)
            check_outputs(spec)
            if self.output is not None:
                self.output.check()
        except BaseException:
            if self.output is not None:
                self.output.cleanup()
            raise

    @property
    def total_results(self) -> int | None:
        """Results rows the job will make, when the manifest records its row count (Parquet)."""
        if self.spec.shard is not None:  # about 1/N of them, known only once read
            return None
        rows = self.manifest.count_rows()
        return None if rows is None else rows * self.spec.shape.results_per_row

    def run(self, **options: Unpack[RunOptions]) -> JobSummary:
        """Run the job to its end (however it ends) and return its summary; see :meth:`run_async`."""
        import anyio

        async def main() -> JobSummary:
            return await self.run_async(**options)

        return anyio.run(main)

    async def run_async(
        self,
        *,
        api_key: str | None = None,
        local: bool = False,
        engine: str = "auto",
        progress: ProgressReporter | None = None,
        announce: Announce | None = None,
    ) -> JobSummary:
        """Run against ``spec.base_url`` with ``api_key`` (default: env ``SMALLEST_API_KEY``),
        or against the bundled local server, started for the job, with ``local=True``."""
        from batchtts.api.client import ApiKey, WavesClient
        from batchtts.job.runner import Runner

        key = None if local else resolve_key(api_key)
        progress = progress or ProgressReporter(self.total_results)
        async with _endpoint(self.spec.base_url, key, local, engine, announce) as (url, secret):
            client = WavesClient(url, ApiKey(secret), expire_content=self.spec.expire_content,
                                 idle_timeout=self.spec.idle_timeout,
                                 connect_timeout=self.spec.connect_timeout,
                                 max_connections=self.spec.streams)  # fmt: skip
            try:
                async with _limits(self.spec, None if local else secret) as throttle:
                    progress.start()
                    voices = await voice_catalog(client, redactor(secret)) if self.spec.voice_check else None
                    runner = Runner(self.spec, self.manifest, client, progress, redact=redactor(secret),
                                    voices=voices, throttle=throttle, output=self.output)  # fmt: skip
                    summary = await runner.run()
                    if self.output is not None and summary.results_path is not None:
                        summary.results_path = self._shown_results(summary.results_path)
                    return summary
            finally:
                progress.stop()
                await client.aclose()
                if self.output is not None:
                    self.output.cleanup()

    def _shown_results(self, results: Path) -> Path:
        """The results' place in the store (a Path made from the URL: print it with ``storage.objects.shown``)."""
        assert self.output is not None
        try:
            return Path(self.output.url + results.relative_to(self.output.scratch).as_posix())
        except ValueError:
            return results


def object_output(spec: JobSpec) -> ObjectOutput | None:
    """The object store output when ``--out`` is a URL (a UsageError for what cannot be one)."""
    from batchtts.storage.objects import object_url

    url = object_url(spec.out_dir)
    if url is None:
        return None
    if spec.results_path is not None and object_url(spec.results_path) is not None:
        raise UsageError(f"--results {spec.results_path}: leave it out with --out {url} (results go there) "
                         "or give a local file")  # fmt: skip
    from batchtts.job.objectout import ObjectOutput

    keep_local = bool(spec.shape.group_by or spec.shape.metadata)
    return ObjectOutput.for_url(url, keep_local=keep_local)


def check_outputs(spec: JobSpec) -> None:
    """Every place the job writes (DIR with its audio, metadata and chapters; the state folder; the
    results manifest's folder) can be written: a UsageError naming the path before any request."""
    from batchtts.storage import check_writable_folder

    if spec.results.is_dir():
        raise UsageError(f"--results {spec.results}: is a folder; give a file name ending .parquet, .csv or .jsonl")
    check_writable_folder(spec.out_dir, f"--out {spec.out_dir}")
    check_writable_folder(spec.state_dir, f"--out {spec.out_dir}")
    check_writable_folder(spec.results.parent, f"--results {spec.results}")


def run_job(spec: JobSpec, **options: Unpack[RunOptions]) -> JobSummary:
    """``Job(spec).run(**options)``: check, run, and return the summary."""
    return Job(spec).run(**options)


async def voice_catalog(client: WavesClient, redact: Callable[[str], str]) -> frozenset[str] | None:
    """The account's voices, asked once before the first request; None (and a warning) when unreadable."""
    from batchtts.errors import VoiceCatalogUnavailable

    try:
        voices = await client.fetch_voices()
    except VoiceCatalogUnavailable as exc:
        log.warning("cannot read the voice catalog (%s): going on without checking voices first", redact(str(exc)))
        return None
    log.info("voice catalog: %d voices; rows with another voice fail without a request", len(voices))
    return voices


def resolve_key(api_key: str | None) -> str:
    """The key given, else the environment's; a UsageError when there is none."""
    key = (api_key if api_key is not None else os.environ.get(KEY_ENV, "")).strip()
    if not key:
        raise UsageError(f"no API key: pass api_key=..., set {KEY_ENV}=<your key>, or use local=True")
    return key


def redactor(secret: str) -> Callable[[str], str]:
    """A function that masks ``secret`` in any text (a log line, an error message)."""

    def redact(text: str) -> str:
        return text.replace(secret, "********") if secret else text

    return redact


@contextlib.asynccontextmanager
async def _limits(spec: JobSpec, api_key: str | None) -> AsyncIterator[Throttle | None]:
    """``--limits-url``: the throttle shared over Redis (checked before any request); else None."""
    if spec.limits_url is None:
        yield None
        return
    from batchtts.schedule.shared.throttle import shared_throttle

    async with shared_throttle(
        spec.limits_url,
        api_key=api_key,
        namespace=spec.limits_namespace,
        concurrency=spec.concurrency,
        rate=spec.rate,
        max_concurrency=spec.max_concurrency,
        adaptive=spec.adaptive,
        retry_after_scale=spec.retry.time_scale,
    ) as throttle:
        yield throttle


@contextlib.asynccontextmanager
async def _endpoint(
    base_url: str, key: str | None, local: bool, engine: str, announce: Announce | None
) -> AsyncIterator[tuple[str, str]]:
    """Yield (base_url, key): the API's, or a local server's started in a thread for the job."""
    if not local:
        assert key is not None
        yield base_url, key
        return
    try:
        from batchtts.server.config import ServerConfig
        from batchtts.server.running import LocalServer

        server = LocalServer(ServerConfig(engine=engine))
    except ImportError as exc:  # a broken install: starlette and uvicorn come with batchtts
        raise UsageError(f"the local server cannot start: {exc}; reinstall batchtts (pip install batchtts)") from None
    except ValueError as exc:  # --engine espeak without the speech extra
        raise UsageError(f"the local server cannot start: {exc}") from None
    with server:
        if announce is not None:
            announce(
                "local_server",
                f"using the bundled local server at {server.base_url} "
                f"(engine: {server.engine_name}); the audio is local, not from the Waves API",
                url=server.base_url,
                engine=server.engine_name,
            )
        yield server.base_url, LOCAL_KEY
