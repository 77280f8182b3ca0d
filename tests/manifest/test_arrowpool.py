"""The commands give pyarrow the system allocator, unless the user chose a pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from batchtts.cli import main
from batchtts.manifest.arrowpool import POOL_VARIABLE, use_system_allocator


@pytest.fixture
def arrow_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start from mimalloc (pyarrow's usual default) and put the test process's pool back after."""
    before = pa.default_memory_pool()
    monkeypatch.delenv(POOL_VARIABLE, raising=False)
    pa.set_memory_pool(pa.mimalloc_memory_pool())
    yield
    pa.set_memory_pool(before)


def test_the_system_allocator_becomes_the_default_pool(arrow_pool: None) -> None:
    use_system_allocator()
    assert pa.default_memory_pool().backend_name == "system"


def test_a_pool_the_user_chose_is_kept(arrow_pool: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POOL_VARIABLE, "mimalloc")
    use_system_allocator()
    assert pa.default_memory_pool().backend_name == "mimalloc"


def test_validate_reads_the_manifest_with_the_system_allocator(arrow_pool: None, tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,text\na,Hello.\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(manifest)])
    assert result.exit_code == 0, result.output
    assert pa.default_memory_pool().backend_name == "system"


def test_run_uses_the_system_allocator(arrow_pool: None, tmp_path: Path, local_server) -> None:
    from tests.runner_support import run_job, write_csv

    server = local_server()
    job = run_job(write_csv(tmp_path / "m.csv", [{"id": "a", "text": "Hello."}]), tmp_path / "out", server.base_url)
    assert job.exit_code == 0, job.output
    assert pa.default_memory_pool().backend_name == "system"
