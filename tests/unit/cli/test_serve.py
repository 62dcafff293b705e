"""`auricle serve` start checks: which addresses count as this machine only, and when keys are required."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from auricle.cli.serve import is_loopback, unauthenticated_refusal
from auricle.config import Settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "::1", "[::1]"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "auricle.example.org", ""])
def test_other_addresses_are_exposed(host: str) -> None:
    assert not is_loopback(host)


def test_keys_or_an_explicit_setting_let_an_exposed_server_start(tmp_path) -> None:
    exposed = Settings(data_dir=tmp_path, host="0.0.0.0")
    refusal = unauthenticated_refusal(exposed)
    assert refusal is not None and "\n" not in refusal and "AURICLE_ALLOW_UNAUTHENTICATED=true" in refusal
    assert unauthenticated_refusal(Settings(data_dir=tmp_path, host="0.0.0.0", api_keys=[SecretStr("k")])) is None
    assert unauthenticated_refusal(Settings(data_dir=tmp_path, host="0.0.0.0", allow_unauthenticated=True)) is None
    assert unauthenticated_refusal(Settings(data_dir=tmp_path, host="127.0.0.1")) is None
