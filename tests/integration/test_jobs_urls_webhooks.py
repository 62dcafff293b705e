"""A real server process and the ``tiny.en`` model: a job from a URL on a local file server is transcribed, and the
webhook it names hears of it, signed."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from _hooks import SECRET, FileServer, Receiver
from auricle.cli import jobs as cli_jobs

from _redis import AUDIO, CLIPS, JobsServer, wait_all

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_url_job_is_transcribed_and_its_webhook_arrives_signed(tmp_path: Path) -> None:
    env = {
        "AURICLE_WORKERS": "1",
        "AURICLE_URL_ALLOW_PRIVATE": "true",
        "AURICLE_WEBHOOK_SECRET": SECRET,
        "AURICLE_WEBHOOK_POLL_S": "0.2",
        "AURICLE_PUBLIC_URL": "https://auricle.example.org",
    }
    clip = (AUDIO / "jfk.flac").read_bytes()
    with FileServer({"/speech/jfk.flac": (200, "audio/flac", clip)}) as files, Receiver() as receiver:
        server = JobsServer(tmp_path / "data", env)
        try:
            with server.client() as client:
                # Given a job submitted by URL with a webhook, through `auricle jobs submit --url … --webhook …`
                out = io.StringIO()
                code = cli_jobs.submit(
                    [], out, url=server.url, audio_urls=[files.url("/speech/jfk.flac")], webhook=receiver.url
                )
                assert code == 0, out.getvalue()
                job_id, filename = out.getvalue().strip().split("\t")
                assert filename == "jfk.flac"
                job = {"id": job_id}
                # When it has run
                done = wait_all(client, [job["id"]])[job["id"]]
                assert done["status"] == "succeeded", done
                # Then its transcript has the clip's words, and its audio is kept like an upload
                text = client.get(f"/v1/jobs/{job['id']}/result", params={"format": "text"}).text.lower()
                assert CLIPS["jfk.flac"] <= set(text.replace(",", " ").replace(".", " ").split()), text
                assert client.get(f"/v1/jobs/{job['id']}/audio").content == clip
                # And the webhook arrived, signed, with the absolute result URL
                [delivery] = receiver.wait(1, timeout=30)
                payload = Webhook(SECRET).verify(delivery.body, delivery.headers)
                assert payload["type"] == "job.succeeded"
                assert payload["data"]["result_url"] == f"https://auricle.example.org/v1/jobs/{job['id']}/result"
                assert payload["data"]["audio_seconds"] == pytest.approx(11.0, abs=0.2)
                deadline = time.monotonic() + 10
                while client.get(f"/v1/jobs/{job['id']}").json()["webhook"]["state"] != "delivered":
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
        finally:
            server.stop()
