"""Decode any audio or video file to 16 kHz mono float32 with PyAV (FFmpeg's libraries, no ffmpeg binary).

Frames are resampled as they are demuxed and written into one growing array, so a long file is held once,
not as a list of frames plus a concatenated copy.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from auricle.engine.types import SAMPLE_RATE, Audio
from auricle.errors import AudioDecodeError, TooLargeError

__all__ = ["decode", "decode_pcm_s16le"]

logger = logging.getLogger(__name__)

BYTES_PER_SECOND = 40.0
"""Least input bytes per second of decoded audio (320 bit/s, below any speech codec's bitrate)."""
MIN_BOUND_S = 60.0
"""Audio any file may decode to, whatever its size."""


class _Growing:
    """A float32 buffer of shape (channels, n) that doubles its capacity as samples arrive."""

    def __init__(self, channels: int, capacity: int) -> None:
        self.data: np.ndarray = np.empty((channels, max(capacity, SAMPLE_RATE)), dtype=np.float32)
        self.size = 0

    def append(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if self.size + n > self.data.shape[1]:
            grown = np.empty((self.data.shape[0], max(self.data.shape[1] * 2, self.size + n)), dtype=np.float32)
            grown[:, : self.size] = self.data[:, : self.size]
            self.data = grown
        self.data[:, self.size : self.size + n] = block
        self.size += n

    def result(self) -> np.ndarray:
        # A view when little capacity is unused: copying would double the peak for long files.
        view: np.ndarray = self.data[:, : self.size]
        if self.data.shape[1] - self.size > self.data.shape[1] // 10:
            copied: np.ndarray = view.copy()
            return copied
        return view


def decode(
    source: str | Path | BinaryIO,
    *,
    keep_channels: bool = False,
    max_seconds: float | None = None,
) -> Audio:
    """Decode the first audio stream of ``source``.

    Args:
        source: a path or a binary file object.
        keep_channels: for a two-channel source, also return both channels (for per-channel diarization).
        max_seconds: raise :class:`TooLargeError` once more audio than this has been decoded.

    Raises:
        AudioDecodeError: empty, truncated, corrupt or non-audio input, or a video without audio.
        TooLargeError: longer than ``max_seconds``.
    """
    try:
        container = av.open(source if not isinstance(source, Path) else str(source), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise AudioDecodeError(_describe(exc)) from exc
    try:
        if not container.streams.audio:
            raise AudioDecodeError("the file has no audio stream")
        stream = container.streams.audio[0]
        stream.codec_context.thread_type = "AUTO"
        stereo = keep_channels and stream.channels == 2
        layout = "stereo" if stereo else "mono"
        # s16 like faster-whisper's own decode_audio, so the model sees the same samples as a direct call.
        resampler = av.AudioResampler(format="s16", layout=layout, rate=SAMPLE_RATE)
        duration, time_base = stream.duration, stream.time_base
        estimate = int((float(duration * time_base) if duration and time_base else 60.0) * SAMPLE_RATE)
        buffer = _Growing(2 if stereo else 1, estimate + SAMPLE_RATE)
        limit = int(max_seconds * SAMPLE_RATE) if max_seconds else None
        # Bounded by the input's size too: a tiny file whose header claims 1 Hz would decode to hours of audio
        # (seconds of work and gigabytes). No real codec needs fewer than BYTES_PER_SECOND bytes per second.
        size = _size(source)
        by_size = int(max(MIN_BOUND_S, size / BYTES_PER_SECOND) * SAMPLE_RATE) if size is not None else None
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler keep its own clock (avoids gaps on broken timestamps)
                for out in resampler.resample(frame):
                    buffer.append(_planes(out, stereo))
                if limit is not None and buffer.size > limit:
                    raise TooLargeError(f"audio is longer than the limit of {max_seconds:.0f} seconds", param="file")
                if by_size is not None and buffer.size > by_size:
                    raise AudioDecodeError("the audio is far longer than its file size allows (a malformed header?)")
            for out in resampler.resample(None):
                buffer.append(_planes(out, stereo))
        except (av.FFmpegError, ValueError) as exc:
            raise AudioDecodeError(_describe(exc)) from exc
    finally:
        container.close()
    if buffer.size == 0:
        raise AudioDecodeError("no audio samples could be decoded (empty or truncated file)")
    data = buffer.result()
    if stereo:
        return Audio(samples=data.mean(axis=0).astype(np.float32), channels=data)
    return Audio(samples=data[0])


def _size(source: str | Path | BinaryIO) -> int | None:
    try:
        if isinstance(source, str | Path):
            return Path(source).stat().st_size
        position = source.tell()
        end = source.seek(0, 2)
        source.seek(position)
        return int(end)
    except (OSError, ValueError, AttributeError):
        return None


def _planes(frame: av.AudioFrame, stereo: bool) -> np.ndarray:
    array: np.ndarray = frame.to_ndarray().astype(np.float32) / 32768.0
    # Packed s16 comes as (1, n*channels) interleaved.
    return array.reshape(-1, 2).T if stereo else array.reshape(1, -1)


def decode_pcm_s16le(data: bytes, *, max_seconds: float | None = None) -> Audio:
    """Interpret raw bytes as 16 kHz mono signed 16-bit little-endian PCM (the `/asr?encode=false` body)."""
    if len(data) < 2:
        raise AudioDecodeError("the raw PCM body is empty")
    usable = len(data) - (len(data) % 2)
    samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
    if max_seconds and len(samples) > max_seconds * SAMPLE_RATE:
        raise TooLargeError(f"audio is longer than the limit of {max_seconds:.0f} seconds", param="file")
    return Audio(samples=samples)


def _describe(exc: BaseException) -> str:
    """What the client is told: never libav's own text or a path on this server (those go to the log)."""
    logger.info("decoding failed: %s: %r", type(exc).__name__, str(exc)[:500])
    if isinstance(exc, OSError) and not isinstance(exc, av.FFmpegError):
        return "the audio file could not be read"
    if isinstance(exc, av.error.InvalidDataError) or "Invalid data found" in str(exc):
        return "the file is not a recognised audio or video format, or it is corrupt"
    return "the audio is corrupt or in a format that cannot be decoded"
