"""fetch_voices: the account's voice catalog, or VoiceCatalogUnavailable saying what went wrong."""

from __future__ import annotations

import anyio
import pytest

from batchtts.api.client import ApiKey, WavesClient
from batchtts.errors import VoiceCatalogUnavailable
from tests.runner_support import BROKEN_CATALOGS, broken_catalog_server


async def _fetch(base_url: str, timeout: float = 5.0) -> frozenset[str]:
    client = WavesClient(base_url, ApiKey("k"))
    try:
        return await client.fetch_voices(timeout=timeout)
    finally:
        await client.aclose()


def test_the_catalog_route_answers_in_the_documented_shape(local_server):
    server = local_server()
    assert anyio.run(_fetch, server.base_url) == {"magnus", "emily", "arjun", "priya", "lucia"}


@pytest.mark.parametrize("kind", sorted(BROKEN_CATALOGS))
def test_fetch_voices_says_what_went_wrong(kind):
    with broken_catalog_server(kind) as (server, said), pytest.raises(VoiceCatalogUnavailable) as raised:
        anyio.run(_fetch, server.base_url, 0.3)
    assert said in str(raised.value)
