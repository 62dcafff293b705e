"""Binary frames to 16 kHz mono float32: 16-bit PCM or raw Opus packets, resampled with a streaming soxr resampler."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from auricle.engine.types import SAMPLE_RATE
from auricle.streaming.protocol import AUDIO_ERROR, ProtocolError

__all__ = ["FrameDecoder"]

logger = logging.getLogger(__name__)

_OPUS_RATE = 48_000  # libopus decodes to 48 kHz whatever the encoder's input rate was


class FrameDecoder:
    """Decodes one session's binary frames in order.

    Args:
        encoding: ``pcm_s16le`` (mono, little-endian) or ``opus`` (one Opus packet per frame).
        sample_rate: the PCM sample rate (Opus always decodes at 48 kHz).
    """

    def __init__(self, encoding: str, sample_rate: int) -> None:
        self.encoding = encoding
        self._rate = _OPUS_RATE if encoding == "opus" else sample_rate
        self._resampler: Any = None
        if self._rate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self._rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        self._opus: Any = self._new_opus() if encoding == "opus" else None

    @staticmethod
    def _new_opus() -> Any:
        import av

        codec = av.CodecContext.create("libopus", "r")
        codec.sample_rate = _OPUS_RATE
        codec.layout = "mono"
        return codec

    def decode(self, frame: bytes) -> np.ndarray:
        """One frame's samples at 16 kHz.

        Raises:
            ProtocolError: ``AUDIO_ERROR`` for an odd-length PCM frame or an undecodable Opus packet.
        """
        if not frame:
            return np.zeros(0, dtype=np.float32)
        samples = self._opus_samples(frame) if self._opus is not None else self._pcm_samples(frame)
        return self._resample(samples, last=False)

    def flush(self) -> np.ndarray:
        """Samples the resampler still holds (call once at the end of the stream)."""
        return self._resample(np.zeros(0, dtype=np.float32), last=True)

    def _pcm_samples(self, frame: bytes) -> np.ndarray:
        if len(frame) % 2:
            raise ProtocolError(AUDIO_ERROR, f"pcm_s16le frame of odd length ({len(frame)} bytes)")
        return np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0

    def _opus_samples(self, frame: bytes) -> np.ndarray:
        import av

        try:
            frames = self._opus.decode(av.Packet(frame))
        except (av.FFmpegError, ValueError, EOFError) as exc:
            # A decoder that rejected a packet may be left in an error state: start a fresh one.
            self._opus = self._new_opus()
            raise ProtocolError(AUDIO_ERROR, f"undecodable Opus packet ({len(frame)} bytes)") from exc
        blocks = []
        for decoded in frames:
            data = decoded.to_ndarray()
            scale = 32768.0 if data.dtype == np.int16 else 1.0
            data = data.astype(np.float32) / scale
            # Packed layouts give (1, n * channels); planar give (channels, n). Keep the first channel.
            channels = len(decoded.layout.channels)
            if data.shape[0] == 1 and channels > 1:
                data = data.reshape(-1, channels).T
            blocks.append(data[0])
        return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)

    def _resample(self, samples: np.ndarray, *, last: bool) -> np.ndarray:
        if self._resampler is None:
            return samples
        return np.asarray(self._resampler.resample_chunk(samples, last=last), dtype=np.float32)
