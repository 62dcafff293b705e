"""API keys over HTTP and WebSocket through the one backend: exact statuses for a missing key, a wrong key and a
locked-out address, the browser's subprotocol key, public paths, and the backend on its own."""

from __future__ import annotations

import base64
import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.testclient import WebSocketDenialResponse

from auricle.api.auth import ApiKeyBackend, AuthFailure, Caller, credentials
from auricle.config import Settings


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def handshake(client: TestClient, path: str, **kwargs) -> None:
    """Open and close a WebSocket: raises WebSocketDenialResponse when the handshake is refused."""
    with client.websocket_connect(path, **kwargs) as ws:
        ws.close()


def subprotocol(key: str) -> str:
    return "auricle.bearer." + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


@pytest.fixture
def keyed(make_client) -> TestClient:
    return make_client(api_keys=["k1", "k2"], auth_fail_limit=3, auth_fail_window_s=30)


def test_http_statuses_for_missing_wrong_and_good_keys(make_client) -> None:
    keyed = make_client(api_keys=["k1", "k2"], auth_fail_limit=100)
    missing = keyed.get("/v1/models")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"] == {
        "message": "a valid API key is required: send 'Authorization: Bearer <key>'",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert keyed.post("/asr", headers=bearer("wrong")).status_code == 401
    assert keyed.post("/asr", headers={"Authorization": "Basic k1"}).json() == {
        "detail": "a valid API key is required: send 'Authorization: Bearer <key>'"
    }
    assert keyed.get("/v1/models", headers=bearer("k2")).status_code == 200
    # Public: probes, and the web UI's static files (it asks for the key itself)
    for path in ("/health", "/ready", "/", "/app.js"):
        assert keyed.get(path).status_code == 200, path
    for path in ("/metrics", "/docs", "/openapi.json", "/v1/jobs"):
        assert keyed.get(path).status_code == 401, path


def test_http_lock_out_refuses_wrong_keys_with_429_but_lets_a_good_key_from_the_same_address_in(
    keyed: TestClient,
) -> None:
    # Given keyless requests and CORS preflights, which are not counted as failures
    for _ in range(5):
        assert keyed.get("/v1/models").status_code == 401
        assert keyed.options("/v1/models", headers={"Access-Control-Request-Method": "GET"}).status_code == 401
    assert keyed.get("/v1/models", headers=bearer("nope")).status_code == 401
    # and then wrong keys up to the limit from one (possibly shared) address
    for _ in range(2):
        assert keyed.get("/v1/models", headers=bearer("nope")).status_code == 401
    # When a wrong key comes again, it gets 429
    locked = keyed.get("/v1/models", headers=bearer("nope"))
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "30"
    assert locked.json()["error"]["code"] == "rate_limited"
    # but a user with the right key behind the same address is served
    assert keyed.get("/v1/models", headers=bearer("k1")).status_code == 200
    assert keyed.get("/health").status_code == 200


def test_websocket_statuses_for_missing_wrong_and_good_keys(keyed: TestClient) -> None:
    with pytest.raises(WebSocketDenialResponse) as missing:
        handshake(keyed, "/transcribe")
    assert missing.value.status_code == 401
    assert missing.value.json() == {"detail": "a valid API key is required: send 'Authorization: Bearer <key>'"}
    with pytest.raises(WebSocketDenialResponse) as wrong:
        handshake(keyed, "/transcribe", headers=bearer("wrong"))
    assert wrong.value.status_code == 401
    with keyed.websocket_connect("/transcribe", headers=bearer("k1")) as ws:
        ws.close()
    # A browser sends the key as a subprotocol; the server selects plain "auricle", never echoing the key
    with keyed.websocket_connect("/transcribe", subprotocols=["auricle", subprotocol("k2")]) as ws:
        assert ws.accepted_subprotocol == "auricle"
        ws.close()


def test_websocket_lock_out_is_429_and_shared_with_http(keyed: TestClient) -> None:
    # Given failures over both protocols from one address
    assert keyed.get("/v1/models", headers=bearer("nope")).status_code == 401
    with pytest.raises(WebSocketDenialResponse):
        handshake(keyed, "/transcribe", subprotocols=["auricle", subprotocol("nope")])
    assert keyed.get("/v1/models", headers=bearer("nope")).status_code == 401
    # Then the next handshake with a wrong key is refused with 429; a good key still gets in
    with pytest.raises(WebSocketDenialResponse) as locked:
        handshake(keyed, "/transcribe", headers=bearer("wrong"))
    assert locked.value.status_code == 429 and locked.value.headers["retry-after"] == "30"
    handshake(keyed, "/transcribe", headers=bearer("k1"))


def test_without_keys_everything_is_open(client: TestClient) -> None:
    assert client.get("/v1/models").status_code == 200
    assert client.get("/metrics").status_code == 200
    with client.websocket_connect("/transcribe") as ws:
        ws.close()


def test_metrics_can_be_left_public(make_client) -> None:
    client = make_client(api_keys=["k1"], protect_metrics=False)
    assert client.get("/metrics").status_code == 200
    assert client.get("/v1/models").status_code == 401


# -- the backend on its own --------------------------------------------------------------------------------------


def scope(path: str, headers: list[tuple[bytes, bytes]] | None = None, address: str = "10.0.0.1") -> dict:
    return {"type": "http", "path": path, "headers": headers or [], "client": (address, 1234)}


def test_backend_names_the_caller_without_revealing_the_key() -> None:
    backend = ApiKeyBackend(Settings(api_keys=[SecretStr("a"), SecretStr("b")]))
    caller = backend.authenticate(scope("/v1/models", [(b"authorization", b"Bearer b")]))
    assert caller == Caller("10.0.0.1", 2) and caller.name == "key-2"
    assert backend.authenticate(scope("/health")) == Caller("10.0.0.1")
    refused = backend.authenticate(scope("/v1/models", [(b"authorization", b"Bearer c")]))
    assert isinstance(refused, AuthFailure) and refused.status == 401


def test_backend_lock_out_is_per_address() -> None:
    backend = ApiKeyBackend(Settings(api_keys=[SecretStr("a")], auth_fail_limit=2))
    wrong = [(b"authorization", b"Bearer x")]
    for _ in range(2):
        backend.authenticate(scope("/asr", wrong, address="10.0.0.9"))
    assert isinstance(locked := backend.authenticate(scope("/asr", wrong, address="10.0.0.9")), AuthFailure)
    assert locked.status == 429
    assert backend.authenticate(scope("/asr", [(b"authorization", b"Bearer a")], "10.0.0.8")) == Caller("10.0.0.8", 1)


@pytest.mark.parametrize(
    "headers,protocols,expected",
    [
        ([(b"authorization", b"Bearer  k1 ")], [], "k1"),
        ([(b"Authorization", b"bearer k1")], [], "k1"),
        ([(b"authorization", b"Basic k1")], [subprotocol("k2")], None),
        ([], ["auricle", subprotocol("k2")], "k2"),
        ([], ["auricle.bearer.!!!"], None),
        ([], ["auricle"], None),
    ],
)
def test_credentials_come_from_the_header_or_the_subprotocol(headers, protocols, expected) -> None:
    assert credentials(headers, protocols) == expected


def test_routes_know_which_key_called(make_client, caplog: pytest.LogCaptureFixture) -> None:
    from fakes import wav_bytes

    client = make_client(api_keys=["k1", "k2"])
    with caplog.at_level(logging.INFO, logger="auricle.api.routes.jobs"):
        response = client.post("/v1/jobs", files={"file": ("a.wav", wav_bytes(1.0))}, headers=bearer("k2"))
    assert response.status_code == 202
    assert any(r.getMessage().startswith("key-2 submitted 1 job(s)") for r in caplog.records)
