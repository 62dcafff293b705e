"""Rate limits: a token bucket per API key and per address, 429 with Retry-After, off by default."""

from __future__ import annotations

import pytest
from starlette.testclient import WebSocketDenialResponse

from auricle.api.ratelimit import TokenBucket


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0  # one token came back in half a second
    assert bucket.take(100.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # never more than the burst


def test_no_limit_by_default(client) -> None:
    assert all(client.get("/v1/models").status_code == 200 for _ in range(60))


def test_per_key_limit_is_429_with_retry_after_and_each_key_has_its_own(make_client) -> None:
    # Given two keys and a limit of 0.01 request/s with a burst of 3
    keyed = make_client(api_keys=["k1", "k2"], rate_limit_per_key=0.01, rate_limit_burst=3)
    # When one key makes a fourth request at once
    assert [keyed.get("/v1/models", headers=bearer("k1")).status_code for _ in range(3)] == [200] * 3
    limited = keyed.get("/v1/models", headers=bearer("k1"))
    # Then it gets 429 with Retry-After in the API's error shape,
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    # the other key (same address) is not affected, nor are the probes, and handshakes count too
    assert keyed.get("/v1/models", headers=bearer("k2")).status_code == 200
    assert keyed.get("/health").status_code == 200 and keyed.get("/ready").status_code in (200, 503)
    with pytest.raises(WebSocketDenialResponse) as denied, keyed.websocket_connect("/transcribe", headers=bearer("k1")):
        pass
    assert denied.value.status_code == 429


def test_per_address_limit_without_keys(make_client) -> None:
    open_server = make_client(rate_limit_per_address=0.01, rate_limit_burst=2)
    assert [open_server.get("/v1/models").status_code for _ in range(3)] == [200, 200, 429]
    assert open_server.post("/asr").status_code == 429
