"""What a plan or an account refuses: a per-key usage quota and keys of another workspace (403), models
the plan lacks (the plan-gated 400)."""

from __future__ import annotations

import httpx
import pytest

from batchtts.server.config import ServerConfig
from tests.server_support import AUTH, BODY, LIVE, SYNC, VOICES, tts_error


def _post(base_url: str, key: str = "test-key", text: str = BODY["text"]) -> httpx.Response:
    return httpx.post(base_url + SYNC, json={**BODY, "text": text}, headers={"Authorization": f"Bearer {key}"})


def test_past_the_request_quota_a_key_gets_403_usage_limit_reached(local_server):
    server = local_server(quota_requests=2)
    assert [_post(server.base_url).status_code for _ in range(2)] == [200, 200]
    refused = _post(server.base_url)
    assert refused.status_code == 403
    error = tts_error(refused)
    assert error["error"] == "Forbidden" and error["message"].startswith("trial or workspace usage limit reached")
    assert "2 requests" in error["message"]
    assert _post(server.base_url, key="another-key").status_code == 200  # counted per key
    live = httpx.post(server.base_url + LIVE, json=BODY, headers=AUTH)
    assert live.status_code == 403  # every synthesis route counts and refuses
    stats = server.stats.snapshot()
    assert stats["starts_total"] == 3 and stats["responses"]["403"] == 2  # refused requests count nothing


def test_past_the_character_quota_only_what_fits_is_served(local_server):
    server = local_server(quota_characters=50)
    text = "x" * 21
    assert [_post(server.base_url, text=text).status_code for _ in range(3)] == [200, 200, 403]
    assert "50 characters" in tts_error(_post(server.base_url, text=text))["message"]
    assert _post(server.base_url, text="short").status_code == 200  # 42 + 5 <= 50
    assert _post(server.base_url, text="1234").status_code == 403  # 47 + 4 > 50


def test_a_forbidden_key_gets_403_on_every_route(local_server):
    server = local_server(forbidden_keys=frozenset({"sk-other-workspace"}))
    refused = _post(server.base_url, key="sk-other-workspace")
    assert refused.status_code == 403
    assert "another workspace or product" in tts_error(refused)["message"]
    voices = httpx.get(server.base_url + VOICES, headers={"Authorization": "Bearer sk-other-workspace"})
    assert voices.status_code == 403
    assert _post(server.base_url).status_code == 200
    assert server.stats.snapshot()["starts_total"] == 1


def test_quota_settings_are_checked_and_the_keys_never_shown():
    with pytest.raises(ValueError, match="quota_requests"):
        ServerConfig(quota_requests=-1)
    with pytest.raises(ValueError, match="forbidden_keys"):
        ServerConfig(forbidden_keys=frozenset({" "}))
    config = ServerConfig(quota_requests=5, quota_characters=900, forbidden_keys=frozenset({"sk-secret-1"}))
    line = config.describe_limits()
    assert "quota: 5 requests and 900 characters per key" in line and "forbidden keys: 1" in line
    assert "sk-secret-1" not in line and "sk-secret-1" not in repr(config)


def test_a_model_the_plan_lacks_gets_the_plan_gated_400(local_server):
    server = local_server(plan_gated_models=frozenset({"lightning_v3.1_pro"}))
    gated = httpx.post(server.base_url + LIVE, json={**BODY, "model": "lightning_v3.1_pro"}, headers=AUTH)
    assert gated.status_code == 400
    payload = gated.json()
    assert payload["status"] is False and len(payload["errors"]) == 1
    assert "please upgrade to a higher plan" in payload["errors"][0]
    assert httpx.post(server.base_url + LIVE, json=BODY, headers=AUTH).status_code == 200
    with pytest.raises(ValueError, match="plan_gated_models"):
        ServerConfig(plan_gated_models=frozenset({"lightning_v9"}))
