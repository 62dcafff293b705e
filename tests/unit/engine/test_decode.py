"""Decoding: every container in the corpus, and every kind of bad input gives one clear error."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from auricle.engine.decode import decode, decode_pcm_s16le
from auricle.errors import AudioDecodeError, TooLargeError


def test_every_corpus_file_decodes_to_16k_mono(corpus):
    for entry in corpus:
        audio = decode(entry["path"])
        assert audio.sample_rate == 16000
        assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
        assert abs(audio.duration - entry["duration_s"]) < 0.15, entry["id"]
        assert 0.01 < np.abs(audio.samples).max() <= 1.0


def test_stereo_channels_are_kept_on_request(corpus):
    stereo = next(e for e in corpus if e["id"] == "en_stereo_two_speakers")
    audio = decode(stereo["path"], keep_channels=True)
    assert audio.channels is not None and audio.channels.shape == (2, len(audio.samples))
    assert not np.allclose(audio.channels[0], audio.channels[1])


def _video(path: Path, with_audio: bool) -> Path:
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio_stream = container.add_stream("aac", rate=16000) if with_audio else None
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, dtype=np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio_stream is not None:
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = 16000
            frame.time_base = Fraction(1, 16000)
            frame.pts = 0
            for packet in audio_stream.encode(frame):
                container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    return path


def test_video_with_audio_decodes(tmp_path):
    audio = decode(_video(tmp_path / "clip.mp4", with_audio=True))
    assert 0.8 < audio.duration < 1.3


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d, c: d / "empty.wav", id="empty"),
        pytest.param(lambda d, c: d / "text.mp3", id="not-audio"),
        pytest.param(lambda d, c: d / "trunc.flac", id="truncated"),
        pytest.param(lambda d, c: _video(d / "silent.mp4", with_audio=False), id="video-without-audio"),
        pytest.param(lambda d, c: d / "random.bin", id="random-bytes"),
    ],
)
def test_bad_input_gives_failed_to_decode_audio(tmp_path, corpus, make):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.mp3").write_text("this is not audio at all\n" * 50)
    jfk = next(e for e in corpus if e["id"] == "en_jfk_inaugural")["path"]
    (tmp_path / "trunc.flac").write_bytes(Path(jfk).read_bytes()[:200])
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioDecodeError, match="failed to decode audio"):
        decode(make(tmp_path, corpus))


def test_duration_limit(corpus):
    sonnet = next(e for e in corpus if e["id"] == "en_librivox_sonnet001")["path"]
    with pytest.raises(TooLargeError):
        decode(sonnet, max_seconds=10)


def test_raw_pcm():
    samples = (np.sin(np.arange(16000) / 10) * 10000).astype("<i2")
    audio = decode_pcm_s16le(samples.tobytes())
    assert audio.duration == 1.0
    with pytest.raises(AudioDecodeError, match="failed to decode audio"):
        decode_pcm_s16le(b"")


def test_a_tiny_file_whose_header_claims_1_hz_is_refused_quickly(tmp_path: Path) -> None:
    import struct
    import time

    # Given a 14 KB WAV whose header says 1 sample a second (it would decode to hours of 16 kHz audio)
    data = np.random.default_rng(0).integers(-3000, 3000, 7000, dtype="<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 1, 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path = tmp_path / "one-hertz.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    # When it is decoded, then it is refused as malformed long before its claimed length, and quickly
    started = time.perf_counter()
    with pytest.raises(AudioDecodeError, match="far longer than its file size"):
        decode(path)
    assert time.perf_counter() - started < 5


def test_decode_errors_name_no_server_path_and_no_libav_text(tmp_path: Path) -> None:
    path = tmp_path / "secret-spool-name.mp3"
    path.write_bytes(b"\xff\xfb" + b"garbage" * 100)
    with pytest.raises(AudioDecodeError) as caught:
        decode(path)
    assert str(tmp_path) not in caught.value.message and "secret-spool-name" not in caught.value.message
    with pytest.raises(AudioDecodeError) as missing:
        decode(tmp_path / "gone.wav")
    assert str(tmp_path) not in missing.value.message and "Errno" not in missing.value.message
