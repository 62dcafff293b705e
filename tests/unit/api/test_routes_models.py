"""``/v1/models`` in OpenAI's shape, the docs, and the OpenAPI schema."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_list_models_has_the_bundled_ones_and_the_default_alias(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    cards = {card["id"]: card for card in body["data"]}
    assert {"tiny.en", "base", "whisper-1"} <= set(cards)
    assert cards["whisper-1"]["default"] and cards["base"]["default"] and not cards["tiny.en"]["default"]
    assert cards["tiny.en"]["multilingual"] is False and cards["base"]["languages"] == 99
    assert "large-v3" not in cards  # not installed, and downloads are off


def test_get_one_model_or_404_naming_the_available_ones(client: TestClient) -> None:
    assert client.get("/v1/models/tiny.en").json()["id"] == "tiny.en"
    assert client.get("/v1/models/Systran/faster-whisper-base").json()["id"] == "Systran/faster-whisper-base"
    missing = client.get("/v1/models/gpt-nonexistent")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found" and "tiny.en" in missing.json()["error"]["message"]


def test_docs_and_schema_describe_every_asr_parameter(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/asr", "/detect-language", "/v1/audio/transcriptions", "/v1/jobs", "/health", "/ready"} <= set(
        spec["paths"]
    )
    parameters = spec["paths"]["/asr"]["post"]["parameters"]
    assert parameters and all(p.get("description") for p in parameters)
    # Dependencies are not parameters clients see
    assert not any(p["name"] in ("settings", "registry", "service", "connection") for p in parameters)
