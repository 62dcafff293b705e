"""The address guard, and the queue side of URL jobs, linked re-runs and session deletes on every backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from auricle.errors import JobStateError, UrlError
from auricle.jobs.base import JobQueue
from auricle.jobs.codec import ErrorInfo
from auricle.jobs.urls import check_url, url_filename

Audio = Callable[[], Path]
RESULT = {"language": "en", "duration": 1.0, "segments": [], "task": "transcribe"}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.wav",
        "http://localhost:8080/a.wav",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.10/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(url: str) -> None:
    with pytest.raises(UrlError, match="AURICLE_URL_ALLOW_PRIVATE"):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)


@pytest.mark.parametrize("url", ["ftp://example.org/a.wav", "file:///etc/passwd", "http:///nohost", "a.wav"])
def test_only_http_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(UrlError, match="http or https"):
        check_url(url, allow_private=True)


@pytest.mark.parametrize("url", ["http://[::1/a", "http://e.org:99999/a", "http://e.org:port/a"])
def test_malformed_urls_are_a_clear_error(url: str) -> None:
    with pytest.raises(UrlError, match="not a valid URL"):
        check_url(url, allow_private=False)


def test_public_address_passes_and_file_names_come_from_the_path() -> None:
    check_url("https://93.184.216.34/talk.mp3", allow_private=False)
    assert url_filename("https://e.org/media/my%20talk.mp3?sig=1") == "my talk.mp3"
    assert url_filename("https://e.org/") == "audio"


def test_url_job_keeps_fetched_audio_and_can_be_retried(job_queue: JobQueue, audio: Audio) -> None:
    # Given a URL job (no audio yet) claimed by a worker
    job = job_queue.enqueue(None, filename="talk.wav", options={}, source_url="https://e.org/talk.wav")
    assert job.audio_path is None and job.source_url == "https://e.org/talk.wav"
    assert job_queue.claim("w1", 30.0).job is not None
    # When another worker reports fetched audio, nothing is kept; the holder's is kept like an upload
    assert job_queue.store_fetched(job.id, "w2", audio()) is None
    stored = job_queue.store_fetched(job.id, "w1", audio())
    assert stored is not None and stored.audio_path is not None
    assert job_queue.audio_file(job.id).read_bytes().startswith(b"RIFF")
    # And a failed URL job may be retried even when its fetch never succeeded
    other = job_queue.enqueue(None, filename="x.wav", options={}, source_url="https://e.org/x.wav")
    assert job_queue.claim("w1", 30.0, job_id=other.id).job is not None
    job_queue.fail(other.id, "w1", ErrorInfo("UrlError", "unreachable", "url"))
    assert job_queue.retry(other.id).status == "queued"


def test_rerun_makes_a_linked_job_on_a_copy_of_the_audio(job_queue: JobQueue, audio: Audio) -> None:
    job = job_queue.enqueue(audio(), filename="a.wav", options={"language": "en"}, session="s", webhook_url="http://h")
    with pytest.raises(JobStateError):
        job_queue.rerun(job.id, {"language": "de"})
    job_queue.claim("w1", 30.0)
    job_queue.complete(job.id, "w1", RESULT, {})
    rerun = job_queue.rerun(job.id, {"language": "de"})
    assert (rerun.retry_of, rerun.session, rerun.webhook_url, rerun.options) == (
        job.id,
        "s",
        "http://h",
        {"language": "de"},
    )
    assert rerun.audio_path != job_queue.get(job.id).audio_path
    assert job_queue.audio_file(rerun.id).read_bytes() == job_queue.audio_file(job.id).read_bytes()


def test_delete_session_removes_its_jobs_and_audio(job_queue: JobQueue, audio: Audio) -> None:
    mine = [job_queue.enqueue(audio(), filename="a.wav", options={}, session="s1") for _ in range(3)]
    other = job_queue.enqueue(audio(), filename="b.wav", options={}, session="s2")
    assert job_queue.delete_session("s1") == 3
    assert not any(job_queue.exists(j.id) for j in mine)
    assert not any(Path(j.audio_path or "").exists() for j in mine)
    assert job_queue.exists(other.id)
