"""The process helpers of the job tests report a server's error answers instead of waiting them out."""

from __future__ import annotations

import httpx
import pytest

from _redis import HTTPFailure, wait_all


def test_an_error_answer_fails_at_once_with_its_status_and_body() -> None:
    # Given a server that answers the job listing with an error
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": "redis is gone", "code": "internal_error"}})

    client = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://jobs")
    # When the tests wait for jobs, then the failure names the status and the body
    with pytest.raises(HTTPFailure, match="answered 500: .*redis is gone"):
        wait_all(client, ["a" * 32], timeout=5)


def test_an_unreachable_server_is_waited_for() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://jobs")
    with pytest.raises(AssertionError, match="did not finish"):
        wait_all(client, ["a" * 32], timeout=0.6)
