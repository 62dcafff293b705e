"""Issue 12's experiment: do Whisper encoder states help Resemblyzer's d-vectors tell speakers apart?

For the windows today's diarizer embeds (1.6 s every 0.25 s over the VAD speech), each variant builds a feature
vector and hands it to today's clustering and post-processing unchanged (same code path as
``ResemblyzerDiarizer.diarize``; only ``_embed_windows``' output and the count thresholds are swapped in):

* ``dvec``: Resemblyzer's d-vector (today);
* ``tiny.en`` / ``base`` (``+std``): the bundled Whisper model's encoder output (CTranslate2, int8, one thread)
  for each window's log-mel encoded on its own (see :func:`window_states`), mean-pooled (and std-pooled) over
  the window, with the recording's mean removed and L2-normalised (raw encoder states carry the words as much
  as the voice);
* ``dvec+tiny.en`` / ``dvec+base``: both, each block L2-normalised and weighted by the square root of its share, so
  the cosine of two windows is exactly ``w * cos(d-vectors) + (1 - w) * cos(Whisper)`` (score fusion; ``w`` 0.5,
  and 0.8 for ``dvec.8+base``).

The sets, scoring and table are ``bench/diarization_quality.py``'s (conversation seeds ``--seeds``, single
speakers, AMI with the automatic count and the count given). The count thresholds of today's clustering are
calibrated on Resemblyzer similarities, so the other variants get their own (:data:`VARIANTS`), fitted with
``--calibrate`` on the tuning seeds (0 and 1: conversations and single speakers, count right) by the same decision
``_clustering._choose_count`` makes; conversations of seeds 2 and 3 are reported apart as held out.

    .venv/bin/python bench/diarization_features.py [--seeds 0 1 2 3] [--variants dvec base ...]
    .venv/bin/python bench/diarization_features.py --calibrate [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]

from diarization_quality import Diarize, Item, Row, items, print_table, score  # noqa: E402
from faster_whisper import WhisperModel  # noqa: E402

import auricle.engine.diarize as diarize_module  # noqa: E402
from auricle.config import Settings  # noqa: E402
from auricle.engine import _clustering  # noqa: E402
from auricle.engine._clustering import NARROWBAND, WIDEBAND, Thresholds  # noqa: E402
from auricle.engine._voice_encoder import PARTIAL_FRAMES, blas_limit  # noqa: E402
from auricle.engine.diarize import ResemblyzerDiarizer, _clean_spans, _Windows  # noqa: E402
from auricle.engine.protocols import DiarizationResult  # noqa: E402
from auricle.engine.types import SAMPLE_RATE, SpeechSpan  # noqa: E402
from auricle.models.registry import ModelRegistry  # noqa: E402

TUNING_SEEDS = (0, 1)
MEL_FRAME_S = 0.01
WINDOW_S = 1.6


@dataclass(frozen=True)
class Variant:
    """One way to build the window features."""

    whisper: str | None = None
    """Bundled Whisper model whose encoder states are used, or None for d-vectors alone."""
    dvector_weight: float = 1.0
    """Share of a window pair's cosine similarity from the d-vectors (1: d-vectors alone, 0: Whisper alone)."""
    std: bool = False
    """Pool the encoder frames' standard deviation next to their mean."""
    wideband: Thresholds = WIDEBAND
    narrowband: Thresholds = NARROWBAND


def _fitted(wide: tuple[float, float, float], narrow: tuple[float, float, float]) -> dict[str, Thresholds]:
    """``--calibrate``'s thresholds (one speaker, contiguous one speaker, distinct speakers) for each band."""
    return {
        "wideband": replace(WIDEBAND, one_speaker=wide[0], contiguous_one_speaker=wide[1], distinct_speakers=wide[2]),
        "narrowband": replace(
            NARROWBAND, one_speaker=narrow[0], contiguous_one_speaker=narrow[1], distinct_speakers=narrow[2]
        ),
    }


# The Whisper variants' thresholds as ``--calibrate`` fitted them on seeds 0 and 1 (count right, tuning set):
# tiny.en 9/25 wideband, 7/19 telephone; base 12/25, 6/19; base+std 10/25, 7/19; dvec+tiny.en 14/25, 12/19;
# dvec+base 14/25, 11/19; dvec.8+base 23/25, 13/19; d-vectors with today's thresholds 25/25, 15/19.
VARIANTS = {
    "dvec": Variant(),
    "tiny.en": Variant("tiny.en", 0.0, **_fitted((0.24, 0.16, -0.33), (0.25, 0.17, -0.43))),
    "base": Variant("base", 0.0, **_fitted((0.25, 0.17, -0.04), (0.25, 0.17, 0.40))),
    "base+std": Variant("base", 0.0, std=True, **_fitted((0.25, 0.17, 0.22), (0.24, 0.16, -0.32))),
    "dvec+tiny.en": Variant("tiny.en", 0.5, **_fitted((0.57, 0.41, 0.49), (0.66, 0.50, 0.71))),
    "dvec+base": Variant("base", 0.5, **_fitted((0.64, 0.48, 0.57), (0.66, 0.50, 0.77))),
    "dvec.8+base": Variant("base", 0.8, **_fitted((0.78, 0.66, 0.75), (0.88, 0.72, 0.83))),
}


@dataclass
class Features:
    """Today's windows (with their d-vectors) and, per Whisper model, the encoder frames pooled over each window."""

    windows: _Windows
    pooled: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # model -> (mean, std)


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def window_states(
    model: WhisperModel, samples: np.ndarray, windows: _Windows, spans: list[SpeechSpan], batch: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the Whisper encoder's output over each window, each window encoded alone.

    The log-mel is computed once for the recording (Whisper's normalisation to the loudest frame is per
    recording); each window's 160 mel frames are encoded on their own, so every window sees the same encoder
    positions (encoding 30 s chunks instead put each window at a different position, and the positional part of
    the states split the recording by position, not by voice). A window of a span shorter than 1.6 s is padded
    with the recording's quietest mel value and pooled over its own frames only.
    """
    mel = model.feature_extractor(samples.astype(np.float32), padding=0)
    floor = float(mel.min())
    span_starts = np.array([s.start for s in spans])[windows.span_ids]
    span_ends = np.array([s.end for s in spans])[windows.span_ids]
    starts = np.maximum(span_starts, windows.centres - WINDOW_S / 2)
    lengths = np.minimum(span_ends, windows.centres + WINDOW_S / 2) - starts
    first = np.clip(np.round(starts / MEL_FRAME_S).astype(int), 0, mel.shape[1] - 1)
    frames = np.clip(np.round(lengths / MEL_FRAME_S).astype(int), 2, PARTIAL_FRAMES)
    means, stds = [], []
    for lo in range(0, len(first), batch):
        block = np.full((min(batch, len(first) - lo), mel.shape[0], PARTIAL_FRAMES), floor, np.float32)
        for j, (f, n) in enumerate(zip(first[lo : lo + batch], frames[lo : lo + batch], strict=True)):
            part = mel[:, f : f + n]
            block[j, :, : part.shape[1]] = part
        states = np.array(model.encode(block))  # (windows, 80, width): one state per two mel frames
        for j, n in enumerate(frames[lo : lo + batch]):
            own = states[j, : max(1, n // 2)]
            means.append(own.mean(0))
            stds.append(own.std(0))
    return np.array(means, np.float32), np.array(stds, np.float32)


def _centred(x: np.ndarray) -> np.ndarray:
    """The recording's mean removed, rows L2-normalised."""
    x = x - x.mean(0, keepdims=True)
    out: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return out


def embeddings(features: Features, variant: Variant) -> np.ndarray:
    """The window vectors a variant clusters."""
    dvec = features.windows.embeddings
    if variant.whisper is None or not len(dvec):
        return dvec
    mean, std = features.pooled[variant.whisper]
    whisper = _centred(mean)
    if variant.std:
        whisper = np.concatenate([whisper, _centred(std)], 1) / np.sqrt(2)
    w = variant.dvector_weight
    blocks = ([np.sqrt(w) * dvec] if w > 0 else []) + [np.sqrt(1 - w) * whisper]
    return np.concatenate(blocks, 1).astype(np.float32)


@contextmanager
def swapped(windows: _Windows, variant: Variant) -> Iterator[None]:
    """Make ``ResemblyzerDiarizer.diarize`` use these windows and the variant's count thresholds."""
    saved = (diarize_module._embed_windows, diarize_module.WIDEBAND, diarize_module.NARROWBAND)
    diarize_module._embed_windows = lambda *_: windows  # type: ignore[assignment]
    diarize_module.WIDEBAND, diarize_module.NARROWBAND = variant.wideband, variant.narrowband
    try:
        yield
    finally:
        diarize_module._embed_windows, diarize_module.WIDEBAND, diarize_module.NARROWBAND = saved


def runner(diarizer: ResemblyzerDiarizer, windows: _Windows, variant: Variant) -> Diarize:
    def run(samples: np.ndarray, spans: list[SpeechSpan], n: int | None) -> DiarizationResult:
        with swapped(windows, variant):
            if n is None:
                return diarizer.diarize(samples, spans, min_speakers=1, max_speakers=4)
            return diarizer.diarize(samples, spans, num_speakers=n)

    return run


class Extractor:
    """Computes every item's features once, timing each extractor and noting the memory its model takes."""

    def __init__(self, models: set[str]) -> None:
        self.diarizer = ResemblyzerDiarizer()
        rss = _rss_mb()
        self.diarizer.encoder  # noqa: B018 - load it now, to measure it
        self.memory_mb = {"dvec": _rss_mb() - rss}
        registry = ModelRegistry(Settings())
        self.models: dict[str, WhisperModel] = {}
        for name in sorted(models):
            rss = _rss_mb()
            self.models[name] = WhisperModel(
                str(registry.resolve(name)), device="cpu", compute_type="int8", cpu_threads=1
            )
            self.memory_mb[name] = _rss_mb() - rss
        self.seconds = dict.fromkeys(self.memory_mb, 0.0)
        self.audio_s = 0.0

    def __call__(self, item: Item) -> Features:
        clean = _clean_spans(item.spans, len(item.samples) / SAMPLE_RATE)
        d = self.diarizer
        started = time.perf_counter()
        with blas_limit(d.blas_threads):
            windows = diarize_module._embed_windows(d.encoder, item.samples, clean, d._hop_for(clean), d.batch_size)
        self.seconds["dvec"] += time.perf_counter() - started
        self.audio_s += len(item.samples) / SAMPLE_RATE
        features = Features(windows)
        for name, model in self.models.items():
            started = time.perf_counter()
            features.pooled[name] = window_states(model, item.samples, windows, clean)
            self.seconds[name] += time.perf_counter() - started
        return features

    def report(self) -> str:
        minutes = self.audio_s / 60
        return "; ".join(
            f"{name}: {self.seconds[name] / minutes:.2f} s per audio minute, +{self.memory_mb[name]:.0f} MB RSS"
            for name in self.seconds
        )


def _set_name(item: Item) -> str:
    if item.set in ("real", "phone"):
        seed = int(item.name.rsplit("_s", 1)[1])
        return f"{item.set} {'tune' if seed in TUNING_SEEDS else 'held out'}"
    return item.set


def _needed(variants: list[str]) -> set[str]:
    return {m for v in variants if (m := VARIANTS[v].whisper) is not None}


def main(seeds: list[int], variants: list[str]) -> None:
    extract = Extractor(_needed(variants))
    rows: dict[tuple[str, str, bool], list[Row]] = {}
    for item in items(seeds):
        features = extract(item)
        for name in variants:
            windows = replace(features.windows, embeddings=embeddings(features, VARIANTS[name]))
            diarize = runner(extract.diarizer, windows, VARIANTS[name])
            for given in (False, True) if item.speakers > 1 else (False,):
                row = score(item, diarize, given)
                rows.setdefault((_set_name(item), name, given), []).append(row)
                print(
                    f"{item.set:<12} {item.name:<36} {name:<13} {'given' if given else 'auto':<5} "
                    f"speakers {row.found}/{item.speakers} DER {row.errors / max(row.total, 1e-9):6.1%}",
                    file=sys.stderr,
                )
    print(f"seeds {seeds}; thresholds of the Whisper variants fitted on seeds {list(TUNING_SEEDS)}; s/min = clustering")
    print_table(rows, variants, set_width=16)
    print("features:", extract.report())


# ---------------------------------------------------------------- calibration of the count thresholds


@dataclass
class _Splits:
    """What ``_clustering._choose_count`` looks at for one recording, for every k it may try."""

    speakers: int
    narrowband: bool
    min_size: int
    two_similarity: float
    two_stretches: int
    similarity: dict[int, float]  # k -> the most similar two centroids of the k-partition (k >= 2)
    smallest: dict[int, int]  # k -> its smallest cluster (windows)


def _splits(item: Item, diarizer: ResemblyzerDiarizer, windows: _Windows) -> _Splits:
    """Record the inputs the diarizer gives ``cluster_embeddings`` and compute its candidate partitions."""
    seen: dict[str, object] = {}

    def record(x: np.ndarray, **kwargs: object) -> np.ndarray:
        seen.update(kwargs, x=x)
        return np.zeros(len(x), dtype=int)

    saved = diarize_module.cluster_embeddings
    diarize_module.cluster_embeddings = record  # type: ignore[assignment]
    try:
        runner(diarizer, windows, Variant())(item.samples, item.spans, None)
    finally:
        diarize_module.cluster_embeddings = saved
    x = _clustering._normalise(np.asarray(seen["x"], dtype=np.float64))
    groups = np.asarray(seen["segment_ids"])
    thresholds = seen["thresholds"]
    assert isinstance(thresholds, Thresholds)
    smoothed = _clustering._smooth(x, groups, thresholds.smooth_windows)
    partitions = {k: _clustering._partition(x, smoothed, k) for k in range(2, int(str(seen["max_speakers"])) + 1)}
    return _Splits(
        item.speakers,
        thresholds is NARROWBAND,
        int(str(seen["min_cluster_size"])),
        partitions[2].max_similarity,
        _clustering._stretches(partitions[2].labels, 4),
        {k: p.max_similarity if len(p.centroids) == k else np.nan for k, p in partitions.items()},
        {k: int(p.sizes.min()) for k, p in partitions.items()},
    )


def _count(s: _Splits, one: float, contiguous: float, distinct: float) -> int:
    """The automatic count ``_choose_count`` gives with these thresholds."""
    if (
        s.smallest[2] < s.min_size
        or s.two_similarity >= one
        or (s.two_stretches <= 3 and s.two_similarity >= contiguous)
    ):
        return 1
    best = 2
    for k in range(3, max(s.similarity) + 1):
        if np.isnan(s.similarity[k]):
            break
        if s.similarity[k] < distinct and s.smallest[k] >= s.min_size:
            best = k
    return best


def fit(splits: list[_Splits], base: Thresholds) -> tuple[Thresholds, int]:
    """The thresholds getting the most counts right; among ties, the one nearest the middle of the tied region."""
    grid = np.round(np.arange(-0.5, 1.0, 0.01), 2)
    offsets = (0.0, 0.04, 0.08, 0.12, 0.16)
    scored = [
        ((one, one - off, distinct), sum(_count(s, one, one - off, distinct) == s.speakers for s in splits))
        for one, off, distinct in itertools.product(grid, offsets, grid)
    ]
    top = max(r for _, r in scored)
    best = np.array([t for t, r in scored if r == top])
    chosen = best[np.argmin(((best - best.mean(0)) ** 2).sum(1))]
    one, contiguous, distinct = (float(v) for v in chosen)
    return replace(base, one_speaker=one, contiguous_one_speaker=contiguous, distinct_speakers=distinct), top


def calibrate(seeds: list[int], variants: list[str]) -> None:
    extract = Extractor(_needed(variants))
    tuning = [(item, extract(item)) for item in items(seeds) if item.set != "ami"]
    for name in variants:
        variant = VARIANTS[name]
        every = [_splits(i, extract.diarizer, replace(f.windows, embeddings=embeddings(f, variant))) for i, f in tuning]
        for band, base in (("wideband", WIDEBAND), ("narrowband", NARROWBAND)):
            splits = [s for s in every if s.narrowband == (base is NARROWBAND)]
            fitted, right = fit(splits, base)
            today = sum(
                _count(s, base.one_speaker, base.contiguous_one_speaker, base.distinct_speakers) == s.speakers
                for s in splits
            )
            print(f"{name:<13} {band:<10} count right {right}/{len(splits)} (today's thresholds {today}): {fitted}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", help="conversation seeds (default 0-3; --calibrate: 0 1)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--calibrate", action="store_true", help="fit the count thresholds instead")
    args = parser.parse_args()
    if args.calibrate:
        calibrate(args.seeds or list(TUNING_SEEDS), args.variants)
    else:
        main(args.seeds or [0, 1, 2, 3], args.variants)


if __name__ == "__main__":
    cli()
