"""The web UI in a real headless Chromium against a real server: upload and follow a job, play from a word,
download subtitles, survive a reload, show the server's errors, stream from a fake microphone, compare two
models. Each test fails on any console error or uncaught page error.

Screenshots go to a temporary folder (kept by pytest for the last few runs); with ``AURICLE_REFRESH_SCREENSHOTS=1``
they replace the tracked ones in docs/screenshots/. The browser is ``AURICLE_CHROMIUM`` when set, else the first of
chromium, chromium-browser or google-chrome on the PATH.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from support import CORPUS, ROOT, Server, normalise, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.model, pytest.mark.slow]

sync_api = pytest.importorskip("playwright.sync_api")

JFK = CORPUS / "audio" / "jfk.flac"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BASE_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def find_chromium() -> Path | None:
    """``AURICLE_CHROMIUM`` if set (a path or a command name), else the first Chromium-like browser on the PATH."""
    override = os.environ.get("AURICLE_CHROMIUM")
    for name in [override] if override else BROWSERS:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/screenshots/ only when asked to refresh the tracked screenshots; a temporary folder otherwise."""
    if os.environ.get("AURICLE_REFRESH_SCREENSHOTS", "").lower() in ("1", "true", "yes"):
        return DOCS_SHOTS
    return tmp_path_factory.mktemp("screenshots")


def fake_microphone_wav(source: Path, target: Path, rate: int = 48_000) -> Path:
    """Decode a corpus clip to 16-bit mono PCM WAV (what Chromium's fake capture device reads), plus a second of
    silence so the looped clip has a pause between repetitions."""
    import av

    chunks = []
    with av.open(str(source)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    samples = np.concatenate([*chunks, np.zeros(rate, dtype=np.int16)]).astype("<i2")
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("ui-server"), {"AURICLE_DEFAULT_MODEL": "tiny.en"})
    yield srv
    srv.stop()


def _docs_shots_state() -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(DOCS_SHOTS.glob("*.png"))}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = screenshot_dir(tmp_path_factory)
    before = _docs_shots_state()
    yield folder
    if folder != DOCS_SHOTS:
        assert _docs_shots_state() == before, "a test run without AURICLE_REFRESH_SCREENSHOTS changed docs/screenshots"


def test_chromium_is_found_on_the_path_or_named_by_the_environment(tmp_path, monkeypatch) -> None:
    # Given only a "chromium-browser" (Ubuntu's name) on the PATH
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    browser = bin_dir / "chromium-browser"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("AURICLE_CHROMIUM", raising=False)
    assert find_chromium() == browser
    # When AURICLE_CHROMIUM names another one, that one is used; a missing one is not found
    other = tmp_path / "my-chrome"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    monkeypatch.setenv("AURICLE_CHROMIUM", str(other))
    assert find_chromium() == other
    monkeypatch.setenv("AURICLE_CHROMIUM", str(tmp_path / "missing"))
    assert find_chromium() is None


def test_screenshots_go_to_docs_only_when_asked(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.delenv("AURICLE_REFRESH_SCREENSHOTS", raising=False)
    assert screenshot_dir(tmp_path_factory) != DOCS_SHOTS
    monkeypatch.setenv("AURICLE_REFRESH_SCREENSHOTS", "1")
    assert screenshot_dir(tmp_path_factory) == DOCS_SHOTS


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    chromium = find_chromium()
    if chromium is None:
        wanted = os.environ.get("AURICLE_CHROMIUM") or " or ".join(BROWSERS)
        pytest.skip(f"no Chromium found ({wanted} on the PATH); set AURICLE_CHROMIUM")
    mic = fake_microphone_wav(JFK, tmp_path_factory.mktemp("mic") / "jfk48k.wav")
    args = [
        *BASE_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}",
    ]
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=args, headless=True)
        yield launched
        launched.close()


class Page:
    """A page with its console errors and uncaught exceptions collected."""

    def __init__(self, page, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.errors: list[str] = []
        self.expected: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"))
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(re.search(pattern, e) for pattern in self.expected)]

    def shot(self, name: str, size: dict[str, int] = DESKTOP, *, show: str | None = None) -> None:
        """Screenshot of the viewport at ``size`` (scrolled to ``show``) into the screenshot folder as NAME.png."""
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.set_viewport_size(size)
        self.page.evaluate("document.querySelectorAll('.toast').forEach(t => t.remove())")
        if show:
            self.page.locator(show).first.evaluate("el => el.scrollIntoView({block: 'start'})")
        else:
            self.page.evaluate("window.scrollTo(0, 0)")
        self.page.wait_for_timeout(250)
        self.page.screenshot(path=str(self.shots / f"{name}.png"), animations="disabled", caret="hide")


@pytest.fixture
def ui(browser, server, shots: Path) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, base_url=server.url, accept_downloads=True)
    context.set_default_timeout(30_000)
    page = Page(context.new_page(), shots)
    yield page
    context.close()
    assert page.unexpected_errors() == [], "the page logged errors:\n" + "\n".join(page.errors)


def job_item(page, filename: str):
    return page.locator("#jobs li.job", has_text=filename).first


def test_upload_follow_play_download_and_reload(ui: Page):
    page = ui.page
    page.goto("/")
    sync_api.expect(page.locator("#opt-model option")).not_to_have_count(0)
    ui.shot("transcribe-empty-desktop")

    # Given a file picked in the Transcribe view
    page.set_input_files("#file-input", str(JFK))

    # Then the job appears in the sidebar and its progress bar reaches 100%
    item = job_item(page, "jfk.flac")
    sync_api.expect(item.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100", timeout=90_000)
    sync_api.expect(item.locator(".badge")).to_have_text("Done")

    # And the transcript shows the words with metrics
    words = page.locator("#segments .word")
    sync_api.expect(words.filter(has_text=re.compile("country", re.I)).first).to_be_visible()
    text = normalise(page.locator("#segments").inner_text())
    assert "ask not what your country can do for you" in text
    sync_api.expect(page.locator("#t-metrics")).to_contain_text("11.0 s")
    sync_api.expect(page.locator("#t-metrics")).to_contain_text("tiny.en")

    # When a word is clicked, the audio plays from that word
    word = words.filter(has_text=re.compile("country", re.I)).first
    start = float(word.get_attribute("data-start"))
    assert start > 3
    page.wait_for_function("() => document.querySelector('#player').readyState >= 1")
    word.click()
    page.wait_for_function(
        "([lo, hi]) => { const t = document.querySelector('#player').currentTime; return t >= lo && t < hi; }",
        arg=[start - 0.05, start + 3],
    )
    page.wait_for_selector("#segments .word.current")
    page.evaluate("document.querySelector('#player').pause()")
    ui.shot("transcript-desktop")
    ui.shot("transcript-phone", PHONE, show="#transcript")
    page.emulate_media(color_scheme="dark")
    ui.shot("transcript-dark-desktop")
    page.emulate_media(color_scheme="light")
    page.set_viewport_size(DESKTOP)

    # When SRT is downloaded, the file is SubRip
    with page.expect_download() as info:
        page.get_by_role("button", name="SRT").click()
    download = info.value
    assert download.suggested_filename == "jfk.srt"
    body = Path(download.path()).read_text()
    assert "-->" in body and "country" in body.lower()

    # When the page is reloaded, the job list is still there
    page.reload()
    sync_api.expect(job_item(page, "jfk.flac").locator(".badge")).to_have_text("Done")
    ui.shot("jobs-phone", PHONE, show=".sidebar")


def test_undecodable_file_shows_the_server_error(ui: Page):
    page = ui.page
    page.goto("/")
    sync_api.expect(page.locator("#opt-model option")).not_to_have_count(0)
    page.set_input_files(
        "#file-input", files=[{"name": "notes.wav", "mimeType": "audio/wav", "buffer": b"this is not audio" * 64}]
    )
    item = job_item(page, "notes.wav")
    sync_api.expect(item.locator(".badge")).to_have_text("Failed", timeout=60_000)
    sync_api.expect(item.locator(".job-error")).to_contain_text("failed to decode audio")
    sync_api.expect(page.locator(".toast.error", has_text="failed to decode audio")).to_have_count(1)
    sync_api.expect(page.locator("#t-message")).to_contain_text("failed to decode audio")

    # An empty file is refused at upload, with the API's message (Chromium logs the 415 response itself)
    ui.expected.append(r"status of 415")
    page.set_input_files("#file-input", files=[{"name": "empty.wav", "mimeType": "audio/wav", "buffer": b""}])
    sync_api.expect(page.locator(".upload.failed")).to_contain_text("empty")
    ui.shot("error-desktop")


def test_many_dropped_files_upload_through_a_queue_and_a_full_queue_is_retried(ui: Page):
    page = ui.page
    page.goto("/")
    sync_api.expect(page.locator("#opt-model option")).not_to_have_count(0)
    # Given the server answers the first upload with "queue full" (503), as it would under 200 files
    full = {"left": 1}

    def jobs_route(route) -> None:
        if route.request.method == "POST" and full["left"]:
            full["left"] -= 1
            route.fulfill(status=503, json={"error": {"message": "the job queue is full", "type": "queue_full"}})
        else:
            route.continue_()

    page.route("**/v1/jobs", jobs_route)
    ui.expected.append(r"status of 503")
    # When twelve short files are picked at once
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(b"\x00\x00" * 16_000)
    wav = buffer.getvalue()
    files = [{"name": f"queued-{i:02d}.wav", "mimeType": "audio/wav", "buffer": wav} for i in range(12)]
    page.set_input_files("#file-input", files=files)
    # Then a queue shows what waits, the refused file is sent again, and every file becomes a job
    sync_api.expect(page.locator(".upload-queue")).to_contain_text("waiting")
    sync_api.expect(page.locator(".upload-queue")).to_contain_text("12 of 12 sent", timeout=60_000)
    sync_api.expect(page.locator(".upload.failed")).to_have_count(0)
    sync_api.expect(page.locator("#jobs li.job", has_text="queued-")).to_have_count(12, timeout=30_000)


def test_live_microphone_confirms_words(ui: Page):
    page = ui.page
    page.goto("/#live")
    sync_api.expect(page.locator("#live-model option")).not_to_have_count(0)
    page.select_option("#live-language", "en")
    page.get_by_role("button", name="Start microphone").click()
    sync_api.expect(page.locator("#live-state")).to_have_text("listening", timeout=20_000)

    # Then confirmed (black) text with words of the clip appears
    page.wait_for_function("() => /country/i.test(document.querySelector('#live-final').textContent)", timeout=60_000)
    color = page.eval_on_selector("#live-final", "el => getComputedStyle(el).color")
    hypothesis = page.eval_on_selector("#live-hypothesis", "el => getComputedStyle(el).color")
    assert color != hypothesis
    ui.shot("live-desktop")
    ui.shot("live-phone", PHONE, show="#view-live .card")
    page.set_viewport_size(DESKTOP)

    page.get_by_role("button", name="Stop").click()
    sync_api.expect(page.locator("#live-state")).to_have_text("done", timeout=60_000)
    final = normalise(page.locator("#live-final").inner_text())
    assert any(word in final for word in ("country", "americans", "fellow"))


def test_live_view_shows_the_jfk_clip_with_the_words_of_batch(ui: Page, server: Server):
    # Given batch's words for the clip the fake microphone loops (the live view's default model, tiny.en)
    import httpx

    with JFK.open("rb") as clip:
        response = httpx.post(
            server.url + "/v1/audio/transcriptions",
            files={"file": ("jfk.flac", clip)},
            data={"model": "tiny.en", "language": "en", "response_format": "json"},
            timeout=120,
        )
    batch = normalise(response.json()["text"]).split()
    page = ui.page
    page.goto("/#live")
    sync_api.expect(page.locator("#live-model option")).not_to_have_count(0)
    page.select_option("#live-language", "en")
    page.get_by_role("button", name="Start microphone").click()
    # When the microphone has played the clip through at least once (it may start anywhere in the loop)
    page.wait_for_function(
        "(n) => document.querySelector('#live-final').textContent.split(/\\s+/).length >= n",
        arg=2 * len(batch) + 2,
        timeout=90_000,
    )
    live = normalise(page.locator("#live-final").inner_text()).split()
    page.get_by_role("button", name="Stop").click()
    # Then the confirmed text holds batch's words for the whole clip, none repeated or cut at a phrase boundary
    text = " ".join(live)
    assert " ".join(batch) in text, (text, batch)


def test_compare_two_models_with_word_error_rate(ui: Page):
    page = ui.page
    page.goto("/#compare")
    sync_api.expect(page.locator("#cmp-model-a option")).not_to_have_count(0)
    models = page.eval_on_selector_all("#cmp-model-a option", "opts => opts.map(o => o.value)")
    assert "tiny.en" in models
    page.select_option("#cmp-model-a", "tiny.en")
    page.select_option("#cmp-model-b", next(m for m in models if m != "tiny.en"))
    page.set_input_files("#cmp-file", str(JFK))
    page.fill(
        "#cmp-reference",
        "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your nation.",
    )
    page.get_by_role("button", name="Run both").click()

    scores = page.locator(".compare-side .score")
    sync_api.expect(scores).to_have_count(2)
    for i in range(2):
        sync_api.expect(scores.nth(i)).to_contain_text("WER", timeout=120_000)
    # "nation" in the reference is not what was said: each side shows that substitution
    sync_api.expect(page.locator(".compare-side mark.sub").first).to_be_visible()
    wer_a = float(re.search(r"WER ([\d.]+)%", scores.nth(0).inner_text()).group(1))
    assert 0 < wer_a < 30
    ui.shot("compare-desktop")
    ui.shot("compare-phone", PHONE, show="#compare-results")


def test_wer_in_the_browser_matches_the_python_normalisation(ui: Page):
    page = ui.page
    page.goto("/")
    result = page.evaluate(
        """async () => {
            const { align } = await import('/wer.js');
            const a = align("Hello, world! It's a test-case.", "hello word its a test case extra");
            return { wer: a.wer, ops: a.ops.map(o => o.op) };
        }"""
    )
    # normalised: "hello world its a test case" vs "hello word its a test case extra"
    assert result["ops"] == ["ok", "sub", "ok", "ok", "ok", "ok", "ins"]
    assert result["wer"] == pytest.approx(2 / 6)
    assert normalise("Hello, world! It's a test-case.") == "hello world its a test case"


def test_api_key_is_asked_for_kept_and_sent(browser, shots: Path, tmp_path: Path):
    # Given a server that requires an API key
    srv = start_server(tmp_path / "keyed", {"AURICLE_DEFAULT_MODEL": "tiny.en", "AURICLE_API_KEYS": "e2e-secret"})
    context = browser.new_context(viewport=DESKTOP, base_url=srv.url)
    context.set_default_timeout(30_000)
    ui = Page(context.new_page(), shots)
    # Chromium itself logs the refused requests before the key is given
    ui.expected += [r"status of 401"]
    page = ui.page
    try:
        # When the page loads without a key, the key dialog opens with the server's message
        page.goto("/")
        dialog = page.locator("#key-dialog")
        sync_api.expect(dialog).to_be_visible()
        sync_api.expect(dialog).to_contain_text("a valid API key is required")
        page.fill("#key-input", "e2e-secret")
        page.get_by_role("button", name="Save").click()

        # Then models load, an upload runs, and the audio is fetched with the key (a blob URL)
        sync_api.expect(page.locator("#opt-model option")).not_to_have_count(0)
        sync_api.expect(page.locator("#key-button")).to_have_text("API key ✓")
        page.set_input_files("#file-input", str(JFK))
        sync_api.expect(job_item(page, "jfk.flac").locator(".badge")).to_have_text("Done", timeout=90_000)
        sync_api.expect(page.locator("#segments .word").first).to_be_visible()
        page.wait_for_function("() => document.querySelector('#player').src.startsWith('blob:')")

        # And the key survives a reload
        page.reload()
        sync_api.expect(job_item(page, "jfk.flac").locator(".badge")).to_have_text("Done")

        # And live streaming carries the key too (as a WebSocket subprotocol: browsers cannot send the header)
        page.get_by_role("tab", name="Live").click()
        page.select_option("#live-language", "en")
        page.get_by_role("button", name="Start microphone").click()
        sync_api.expect(page.locator("#live-state")).to_have_text("listening", timeout=20_000)
        page.wait_for_function(
            "() => /americans/i.test(document.querySelector('#live-final').textContent)", timeout=60_000
        )
        page.get_by_role("button", name="Stop").click()
        sync_api.expect(page.locator("#live-state")).to_have_text("done", timeout=60_000)
        assert ui.unexpected_errors() == [], "\n".join(ui.errors)
    finally:
        context.close()
        srv.stop()


def test_keyboard_only_focus_and_labels(ui: Page):
    page = ui.page
    page.goto("/")
    sync_api.expect(page.locator("#opt-model option")).not_to_have_count(0)

    # Every control has an accessible name
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !el.textContent.trim())
            .map(el => el.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []

    # Tabs work with the arrow keys, and the focus is visible
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('skip')")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "tab-transcribe"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-live"
    sync_api.expect(page.locator("#view-live")).to_be_visible()
    page.keyboard.press("ArrowLeft")
    sync_api.expect(page.locator("#view-transcribe")).to_be_visible()

    # The hidden file input is reachable and its visible label shows the focus
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file-input":
            break
    assert page.evaluate("document.activeElement.id") == "file-input"
    assert page.evaluate("getComputedStyle(document.querySelector('label[for=file-input]')).outlineStyle") == "solid"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "record-button"


def test_an_uploaded_html_page_is_downloaded_never_rendered(browser, server):
    import contextlib

    import httpx

    # Given an HTML page with a script uploaded as a job's "audio"
    html = b"<html><head><title>upload</title></head><body><script>document.title = 'pwned'</script></body></html>"
    answer = httpx.post(server.url + "/v1/jobs", files={"file": ("page.html", html, "text/html")}, timeout=30)
    job_id = answer.json()["jobs"][0]["id"]
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    try:
        # When the browser opens its audio URL, then it is downloaded, byte for byte, and no script ran
        # (Chromium ends the navigation with "Download is starting": that error is the expected outcome.)
        with page.expect_download() as info, contextlib.suppress(sync_api.Error):
            page.goto(server.url + f"/v1/jobs/{job_id}/audio")
        assert Path(info.value.path()).read_bytes() == html
        assert page.title() != "pwned"
    finally:
        context.close()
