"""Offline speaker diarization: who spoke when, from VAD speech spans and Resemblyzer speaker embeddings.

Pipeline of :class:`ResemblyzerDiarizer`:

1. The speech spans (from Silero VAD, passed by the caller) are cut into 1.6 s windows every ``hop`` seconds
   (0.25 s; coarser on long recordings so the number of windows, and so the cost, stays bounded). Spans shorter
   than a window give one zero-padded window.
2. Each window is embedded with Resemblyzer's speaker encoder, run in numpy (see ``_voice_encoder``).
3. The embeddings are clustered (``_clustering``): k-means on neighbour-smoothed embeddings refined by
   nearest-centroid resegmentation, with the caller's ``num_speakers`` or a count (bounded by ``min_speakers``/
   ``max_speakers``) decided by centroid similarities calibrated on real voices. Telephone-band speech (nothing
   above 3.8 kHz) gets its own calibration, since every voice sounds more alike through it.
4. Window labels are smoothed with a running majority, every 10 ms frame of speech takes the label of the
   nearest window centre, and turns shorter than ``min_turn`` are absorbed by their neighbours.

:func:`diarize_channels` handles two-channel recordings with one speaker per channel (phone calls) exactly,
without a model. :func:`assign_speakers` puts the speaker labels on transcript segments and words.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from auricle.engine._clustering import ADDED_CLUSTER_MARGINS, NARROWBAND, WIDEBAND, cluster_embeddings
from auricle.engine._voice_encoder import (
    EMBEDDING_SIZE,
    HOP,
    PARTIAL_FRAMES,
    VoiceEncoder,
    blas_limit,
    gain_for_rms,
    mel_spectrogram,
)
from auricle.engine.protocols import DiarizationResult
from auricle.engine.types import SAMPLE_RATE, Segment, SpeakerTurn, SpeechSpan, Word
from auricle.errors import InvalidRequestError

__all__ = ["ResemblyzerDiarizer", "assign_speakers", "diarize_channels", "speaker_label"]

logger = logging.getLogger(__name__)

_FRAME_S = HOP / SAMPLE_RATE  # 10 ms timeline resolution
_SECONDS_PER_SPEAKER = 2.5  # automatic counts allow at most one speaker per this much speech
_MIN_SPEAKER_S = 2.0  # an automatically found speaker needs windows covering at least this much speech
_RELIABLE_SPAN_S = 0.5
_NARROWBAND_RATIO = 5e-5  # power above 3.8 kHz over power in 0.3-3.4 kHz: telephone speech is far below this
_BAND_SPANS = 20  # speech spans looked at to tell telephone bandwidth
_ENERGY_BLOCK = 1 << 20  # windows from shorter spans are too padded to shape the clusters; they are only assigned


def speaker_label(index: int) -> str:
    """The label of the ``index``-th speaker: ``SPEAKER_00``, ``SPEAKER_01`` ..."""
    return f"SPEAKER_{index:02d}"


@dataclass
class _Windows:
    embeddings: np.ndarray  # (n, 256)
    centres: np.ndarray  # seconds
    span_ids: np.ndarray  # index into the (cleaned) spans
    reliable: np.ndarray  # bool


def _clean_spans(spans: Sequence[SpeechSpan], duration: float) -> list[SpeechSpan]:
    """Sort, clip to the audio, merge overlaps and drop empty spans."""
    out: list[SpeechSpan] = []
    for s in sorted(spans, key=lambda s: s.start):
        start, end = max(0.0, s.start), min(duration, s.end)
        if end - start < _FRAME_S:
            continue
        if out and start <= out[-1].end:
            out[-1] = SpeechSpan(out[-1].start, max(out[-1].end, end))
        else:
            out.append(SpeechSpan(start, end))
    return out


def _embed_windows(
    encoder: VoiceEncoder, samples: np.ndarray, spans: list[SpeechSpan], hop_s: float, batch_size: int
) -> _Windows:
    """Embed 1.6 s windows over every span, ``hop_s`` apart; the last window of a span ends at the span's end."""
    # Resemblyzer normalises the whole (speech) signal to -30 dBFS, never lowering it.
    energy, count = 0.0, 0
    for s in spans:
        a, b = int(s.start * SAMPLE_RATE), int(s.end * SAMPLE_RATE)
        for i in range(a, b, _ENERGY_BLOCK):  # float64 sums, without a float64 copy of a long span
            chunk = samples[i : min(b, i + _ENERGY_BLOCK)].astype(np.float64)
            energy += float(np.dot(chunk, chunk))
        count += b - a
    gain = gain_for_rms(float(np.sqrt(energy / max(count, 1))))
    hop_f = max(1, int(round(hop_s / _FRAME_S)))
    mels: list[np.ndarray] = []
    centres: list[float] = []
    span_ids: list[int] = []
    reliable: list[bool] = []
    embeddings: list[np.ndarray] = []

    def flush() -> None:
        if mels:
            embeddings.append(encoder.embed_frames(np.stack(mels)))
            mels.clear()

    for idx, span in enumerate(spans):
        a, b = int(span.start * SAMPLE_RATE), int(span.end * SAMPLE_RATE)
        mel = mel_spectrogram(samples[a:b], gain=gain)
        n = len(mel)
        if n <= PARTIAL_FRAMES:
            starts = [0]
            mel = np.pad(mel, ((0, PARTIAL_FRAMES - n), (0, 0)))
        else:
            starts = list(range(0, n - PARTIAL_FRAMES, hop_f)) + [n - PARTIAL_FRAMES]
        for f in starts:
            mels.append(mel[f : f + PARTIAL_FRAMES])
            centre = span.start + (f + min(n, PARTIAL_FRAMES) / 2) * _FRAME_S
            centres.append(min(centre, span.end))
            span_ids.append(idx)
            reliable.append(span.end - span.start >= _RELIABLE_SPAN_S)
            if len(mels) >= batch_size:
                flush()
    flush()
    return _Windows(
        embeddings=np.concatenate(embeddings) if embeddings else np.zeros((0, EMBEDDING_SIZE), np.float32),
        centres=np.array(centres),
        span_ids=np.array(span_ids, dtype=int),
        reliable=np.array(reliable, dtype=bool),
    )


def _is_narrowband(samples: np.ndarray, spans: list[SpeechSpan]) -> bool:
    """Whether the speech has (next to) nothing above 3.8 kHz: telephone audio, resampled to 16 kHz."""
    high = band = 0.0
    for s in spans[:_BAND_SPANS]:
        chunk = samples[int(s.start * SAMPLE_RATE) : int(s.end * SAMPLE_RATE)][: 30 * SAMPLE_RATE]
        if len(chunk) < 400:
            continue
        power = np.abs(np.fft.rfft(chunk.astype(np.float64))) ** 2
        freqs = np.fft.rfftfreq(len(chunk), 1 / SAMPLE_RATE)
        high += float(power[freqs > 3800].sum())
        band += float(power[(freqs > 300) & (freqs < 3400)].sum())
    return band > 0 and high / band < _NARROWBAND_RATIO


def _smooth(labels: np.ndarray, span_ids: np.ndarray, width: int) -> np.ndarray:
    """Running majority over ``width`` windows, within each span (ties keep the window's own label)."""
    out: np.ndarray = labels.copy()
    half = width // 2
    for i in range(len(labels)):
        lo, hi = max(0, i - half), min(len(labels), i + half + 1)
        near = [labels[j] for j in range(lo, hi) if span_ids[j] == span_ids[i]]
        counts = Counter(near)
        winner, top = counts.most_common(1)[0]
        if counts[labels[i]] < top:
            out[i] = winner
    return out


def _runs(
    spans: list[SpeechSpan], windows: _Windows, labels: np.ndarray, min_turn: float
) -> list[tuple[float, float, int]]:
    """Label every 10 ms of speech with its nearest window centre's label; absorb runs shorter than ``min_turn``."""
    turns: list[tuple[float, float, int]] = []
    for idx, span in enumerate(spans):
        mask = windows.span_ids == idx
        centres, lab = windows.centres[mask], labels[mask]
        if len(lab) == 0:
            continue
        edges = np.arange(span.start, span.end, _FRAME_S)
        mids = edges + _FRAME_S / 2
        pos = np.clip(np.searchsorted(centres, mids), 1, max(1, len(centres) - 1))
        if len(centres) > 1:
            left_closer = np.abs(mids - centres[pos - 1]) <= np.abs(centres[pos] - mids)
            frame_labels = np.where(left_closer, lab[pos - 1], lab[pos])
        else:
            frame_labels = np.full(len(mids), lab[0])
        change = np.flatnonzero(np.diff(frame_labels)) + 1
        bounds = [0, *change.tolist(), len(frame_labels)]
        runs = [
            [float(edges[s]), float(min(span.end, edges[e - 1] + _FRAME_S)), int(frame_labels[s])]
            for s, e in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        while len(runs) > 1:
            durations = [r[1] - r[0] for r in runs]
            i = int(np.argmin(durations))
            if durations[i] >= min_turn:
                break
            # Give the short run to its longer neighbour, then merge equal neighbours.
            neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(runs)]
            j = max(neighbours, key=lambda j: durations[j])
            runs[i][2] = runs[j][2]
            merged: list[list[float]] = []
            for r in runs:
                if merged and merged[-1][2] == r[2]:
                    merged[-1][1] = r[1]
                else:
                    merged.append(list(r))
            runs = merged
        turns.extend((float(r[0]), float(r[1]), int(r[2])) for r in runs)
    return turns


def _validate_counts(num: int | None, lo: int | None, hi: int | None) -> None:
    for name, value in (("num_speakers", num), ("min_speakers", lo), ("max_speakers", hi)):
        if value is not None and value < 1:
            raise InvalidRequestError(f"{name} must be at least 1", param=name)
    if lo is not None and hi is not None and lo > hi:
        raise InvalidRequestError("min_speakers must not exceed max_speakers", param="min_speakers")


class ResemblyzerDiarizer:
    """Diarizer built on Resemblyzer speaker embeddings and k-means clustering (no torch needed).

    Args:
        weights: Resemblyzer ``pretrained.pt`` to load (default: the one inside the installed ``resemblyzer``
            package). It is read on first use.
        hop: seconds between the starts of two 1.6 s embedding windows.
        max_windows: on long audio the hop grows (up to ``max_hop``) so no more than this many windows are embedded;
            the encoder costs about 2.5 ms per window on one core.
        max_hop: the coarsest hop, in seconds.
        max_speakers: upper bound of the automatic speaker count when the caller gives none.
        min_turn: turns shorter than this (seconds) are absorbed by the neighbouring turn in the same speech span.
        batch_size: windows embedded per batch (bounds memory).
        blas_threads: BLAS threads used while diarizing (needs ``threadpoolctl``; None leaves the process setting).
            One thread keeps diarization from fighting transcription for the cores; two is ~30 % faster when idle.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        hop: float = 0.25,
        max_windows: int = 4800,
        max_hop: float = 0.8,
        max_speakers: int = 8,
        min_turn: float = 0.4,
        batch_size: int = 128,
        blas_threads: int | None = 1,
    ) -> None:
        self._weights = weights
        self._encoder: VoiceEncoder | None = None
        self.hop = hop
        self.max_windows = max_windows
        self.max_hop = max_hop
        self.max_speakers = max_speakers
        self.min_turn = min_turn
        self.batch_size = batch_size
        self.blas_threads = blas_threads

    @property
    def encoder(self) -> VoiceEncoder:
        """The speaker encoder, loaded on first use."""
        if self._encoder is None:
            self._encoder = VoiceEncoder(self._weights, blas_threads=self.blas_threads)
        return self._encoder

    def embed(self, samples: np.ndarray, spans: Sequence[SpeechSpan]) -> np.ndarray:
        """One L2-normalised 256-float voice embedding for the speech in ``spans`` (e.g. a voice print)."""
        spans = _clean_spans(spans, len(samples) / SAMPLE_RATE)
        if not spans:
            return np.zeros(EMBEDDING_SIZE, dtype=np.float32)
        with blas_limit(self.blas_threads):
            w = _embed_windows(self.encoder, samples, spans, self._hop_for(spans), self.batch_size)
        mean = w.embeddings.mean(0)
        out: np.ndarray = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        return out

    def _hop_for(self, spans: list[SpeechSpan]) -> float:
        speech = sum(s.end - s.start for s in spans)
        return min(max(self.hop, speech / self.max_windows), max(self.max_hop, self.hop))

    def diarize(
        self,
        samples: np.ndarray,
        spans: list[SpeechSpan],
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> DiarizationResult:
        """Return speaker turns labelled ``SPEAKER_00``, ``SPEAKER_01`` ... in order of first appearance.

        Args:
            samples: 16 kHz mono float32 audio.
            spans: speech found by VAD, in seconds; only these stretches are attributed.
            num_speakers: the exact number of speakers, when known.
            min_speakers: lower bound of the automatic count (not an exact count).
            max_speakers: upper bound of the automatic count.

        Returns:
            Turns in time order and, per speaker, the mean window embedding (256 floats, L2-normalised).

        Raises:
            InvalidRequestError: a count below 1, or ``min_speakers`` above ``max_speakers``.
        """
        _validate_counts(num_speakers, min_speakers, max_speakers)
        with blas_limit(self.blas_threads):
            return self._diarize(samples, spans, num_speakers, min_speakers, max_speakers)

    def _label(
        self,
        samples: np.ndarray,
        clean: list[SpeechSpan],
        windows: _Windows,
        hop: float,
        num_speakers: int | None,
        min_speakers: int | None,
        upper: int,
        margins: tuple[float, ...],
    ) -> tuple[np.ndarray, list[tuple[float, float, int]]]:
        """A speaker label per window (smoothed) and the turns they make."""
        labels = np.zeros(len(windows.embeddings), dtype=int)
        use = windows.reliable if windows.reliable.sum() >= 2 else np.ones(len(labels), dtype=bool)
        labels[use] = cluster_embeddings(
            windows.embeddings[use],
            num_speakers=num_speakers,
            min_speakers=min_speakers or 1,
            max_speakers=upper,
            segment_ids=windows.span_ids[use],
            min_cluster_size=int(np.ceil(_MIN_SPEAKER_S / hop)),
            thresholds=NARROWBAND if _is_narrowband(samples, clean) else WIDEBAND,
            added_margins=margins,
        )
        if (~use).any():
            centroids = np.array([windows.embeddings[use][labels[use] == k].mean(0) for k in range(labels.max() + 1)])
            labels[~use] = (windows.embeddings[~use] @ centroids.T).argmax(1)

        # Smooth over about 1.25 s of windows whatever the hop.
        width = max(1, int(round(1.25 / hop)) | 1)
        labels = _smooth(labels, windows.span_ids, width)
        return labels, _runs(clean, windows, labels, self.min_turn)

    def _diarize(
        self,
        samples: np.ndarray,
        spans: list[SpeechSpan],
        num_speakers: int | None,
        min_speakers: int | None,
        max_speakers: int | None,
    ) -> DiarizationResult:
        samples = np.asarray(samples, dtype=np.float32)
        clean = _clean_spans(spans, len(samples) / SAMPLE_RATE)
        if not clean:
            return DiarizationResult(turns=[], embeddings={})
        hop = self._hop_for(clean)
        windows = _embed_windows(self.encoder, samples, clean, hop, self.batch_size)

        if max_speakers is not None:
            upper = max_speakers
        else:
            # A speaker needs a few seconds of speech to be told apart; short clips cannot hold many.
            speech_s = sum(s.end - s.start for s in clean)
            upper = max(min_speakers or 1, min(self.max_speakers, max(2, int(speech_s // _SECONDS_PER_SPEAKER))))
        # A given count is tried with the widest margins for added speakers first, then with the narrowest alone
        # when a speaker added by the first try does not last as a turn.
        for margins in (ADDED_CLUSTER_MARGINS, ADDED_CLUSTER_MARGINS[-1:]):
            labels, raw_turns = self._label(samples, clean, windows, hop, num_speakers, min_speakers, upper, margins)
            if num_speakers is None or len({k for _, _, k in raw_turns}) >= num_speakers:
                break

        order: dict[int, str] = {}
        for _, _, k in sorted(raw_turns):
            order.setdefault(k, speaker_label(len(order)))
        turns = [SpeakerTurn(round(s, 3), round(e, 3), order[k]) for s, e, k in sorted(raw_turns)]
        embeddings: dict[str, list[float]] = {}
        for k, name in order.items():
            members = windows.embeddings[labels == k]
            mean = members.mean(0)
            embeddings[name] = [float(v) for v in mean / max(float(np.linalg.norm(mean)), 1e-12)]
        logger.info(
            "diarized %.1f s of speech into %d speakers (%d windows, hop %.2f s)",
            sum(s.end - s.start for s in clean),
            len(order),
            len(labels),
            hop,
        )
        return DiarizationResult(turns=turns, embeddings=embeddings)

    def diarize_channels(
        self, channels: np.ndarray, spans_per_channel: Sequence[Sequence[SpeechSpan]]
    ) -> DiarizationResult:
        """Per-channel attribution with voice embeddings; see :func:`diarize_channels`."""
        return diarize_channels(channels, spans_per_channel, encoder=self)


def diarize_channels(
    channels: np.ndarray,
    spans_per_channel: Sequence[Sequence[SpeechSpan]],
    *,
    encoder: ResemblyzerDiarizer | None = None,
) -> DiarizationResult:
    """Diarize a recording with one speaker per channel (a phone call): speech on channel k is ``SPEAKER_0k``.

    Attribution is exact and needs no model; turns of different channels may overlap in time.

    Args:
        channels: float32 array (C x N), one row per channel, 16 kHz.
        spans_per_channel: the VAD speech spans of each channel, in seconds.
        encoder: when given, also compute each channel's voice embedding with it.

    Returns:
        Turns sorted by start time, labelled by channel; embeddings only when ``encoder`` is given.

    Raises:
        InvalidRequestError: ``channels`` is not 2-D or the span lists do not match the channels.
    """
    channels = np.asarray(channels, dtype=np.float32)
    if channels.ndim != 2 or len(spans_per_channel) != channels.shape[0]:
        raise InvalidRequestError("per-channel diarization needs one span list per channel of a (C x N) array")
    duration = channels.shape[1] / SAMPLE_RATE
    turns: list[SpeakerTurn] = []
    embeddings: dict[str, list[float]] = {}
    for k, spans in enumerate(spans_per_channel):
        label = speaker_label(k)
        clean = _clean_spans(spans, duration)
        turns.extend(SpeakerTurn(round(s.start, 3), round(s.end, 3), label) for s in clean)
        if encoder is not None and clean:
            embeddings[label] = [float(v) for v in encoder.embed(channels[k], clean)]
    turns.sort(key=lambda t: (t.start, t.end, t.speaker))
    return DiarizationResult(turns=turns, embeddings=embeddings)


# ---------------------------------------------------------------- speaker assignment


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _speaker_for(start: float, end: float, turns: Sequence[SpeakerTurn]) -> str:
    """The speaker overlapping [start, end] most; the nearest turn's speaker when none overlaps."""
    totals: dict[str, float] = {}
    for t in turns:
        ov = _overlap(start, end, t.start, t.end)
        if ov > 0:
            totals[t.speaker] = totals.get(t.speaker, 0.0) + ov
    if totals:
        return max(totals, key=lambda s: totals[s])
    nearest = min(turns, key=lambda t: max(t.start - end, start - t.end, 0.0))
    return nearest.speaker


def assign_speakers(segments: list[Segment], turns: list[SpeakerTurn]) -> list[Segment]:
    """Label words and segments with speakers, splitting segments where the speaker changes.

    Each word gets the speaker whose turns overlap it most (the nearest turn's when none overlaps). A segment
    with words is cut into one segment per run of same-speaker words; each piece takes its words' speaker, its
    text is the words joined, and only the first piece keeps the token ids. A segment without words gets the
    speaker overlapping it most. Ids are renumbered from the first segment's id.

    Args:
        segments: transcript segments (not modified).
        turns: diarization turns.

    Returns:
        New segments (and new words); with no turns, copies of the input without speakers.
    """
    if not turns:
        return [replace(s, words=[replace(w) for w in s.words]) for s in segments]
    out: list[Segment] = []
    for seg in segments:
        words = [replace(w, speaker=_speaker_for(w.start, w.end, turns)) for w in seg.words]
        if not words:
            out.append(replace(seg, words=[], speaker=_speaker_for(seg.start, seg.end, turns)))
            continue
        runs: list[list[Word]] = []
        for w in words:
            if runs and runs[-1][-1].speaker == w.speaker:
                runs[-1].append(w)
            else:
                runs.append([w])
        if len(runs) == 1:
            out.append(replace(seg, words=words, speaker=words[0].speaker))
            continue
        for i, run in enumerate(runs):
            out.append(
                replace(
                    seg,
                    start=seg.start if i == 0 else run[0].start,
                    end=seg.end if i == len(runs) - 1 else run[-1].end,
                    text="".join(w.word for w in run),
                    words=run,
                    speaker=run[0].speaker,
                    tokens=list(seg.tokens) if i == 0 else [],
                )
            )
    first_id = segments[0].id if segments else 0
    for i, seg in enumerate(out):
        seg.id = first_id + i
    return out
