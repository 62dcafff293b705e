"""Diarization accuracy, today's diarizer side by side with a previous version loaded from git, in one run.

Sets (see ``tests/diarization_real.py``):

* ``real`` and ``phone``: generated conversations of 2, 3 and 4 real voices from the corpus (clean, overlapped
  turns, background noise; and through an 8 kHz telephone channel, alone or with overlap and noise), seeds
  ``--seeds``;
* ``single`` and ``single_phone``: the corpus's single-speaker recordings, as published and through a telephone
  channel (scored against their VAD speech as one speaker);
* ``ami``: the corpus's 13 AMI meeting excerpts with their RTTM.

Each file is diarized with the automatic count (Speakr's request: ``min_speakers=1``, ``max_speakers=4``) and,
for multi-speaker files, with ``num_speakers`` given. DER is speech-weighted, 0.25 s collar, overlap scored.
"One speaker" is the DER of labelling all VAD speech as one speaker, the bar a diarizer has to beat.

The "before" contender is ``engine/diarize.py`` and ``engine/_clustering.py`` as they were at ``--before REV``
(``git show``, imported as a private package next to today's ``auricle``; the encoder and the rest are today's).
By default that is the merge-base with ``main`` (what a branch changes) or, when the diarizer there is the
working tree's (on ``main`` itself), the version before the last commit that changed it.

    .venv/bin/python bench/diarization.py --quality [--seeds 0 1 2 3] [--before REV]
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from auricle.engine._der import diarization_error_rate  # noqa: E402
from auricle.engine.decode import decode  # noqa: E402
from auricle.engine.diarize import ResemblyzerDiarizer  # noqa: E402
from auricle.engine.protocols import DiarizationResult  # noqa: E402
from auricle.engine.types import SpeakerTurn, SpeechSpan  # noqa: E402
from diarization_real import (  # noqa: E402
    conversation_specs,
    make_conversation,
    rttm_turns,
    single_speaker_files,
    speech_spans,
    telephone_channel,
)

from support import CORPUS, corpus_entries  # noqa: E402

Diarize = Callable[[np.ndarray, list[SpeechSpan], int | None], DiarizationResult]
DIARIZER_FILES = ("_clustering.py", "diarize.py")
"""The diarizer's own modules under ``src/auricle/engine/``: what "before" takes from git history."""


@dataclass
class Item:
    set: str
    name: str
    speakers: int
    samples: np.ndarray
    spans: list[SpeechSpan]
    truth: list[SpeakerTurn]


@dataclass
class Row:
    item: Item
    found: int
    errors: float
    total: float
    one_speaker: float
    seconds: float


def items(seeds: list[int]) -> Iterator[Item]:
    """Every file of every set, with its VAD spans and truth."""
    for spec in conversation_specs(seeds):
        conv = make_conversation(spec)
        yield Item(
            "phone" if spec.telephone else "real",
            spec.name,
            spec.speakers,
            conv.samples,
            speech_spans(conv.samples),
            conv.turns,
        )
    rng = np.random.default_rng(0)
    for file in single_speaker_files():
        samples = decode(CORPUS / "audio" / file).samples
        for kind, audio in (
            ("single", samples),
            ("single_phone", telephone_channel(samples + rng.normal(0, 3e-4, len(samples)).astype(np.float32))),
        ):
            spans = speech_spans(audio)
            yield Item(kind, file, 1, audio, spans, [SpeakerTurn(s.start, s.end, "A") for s in spans])
    for entry in corpus_entries():
        if entry["rttm"]:
            samples = decode(entry["path"]).samples
            truth = rttm_turns(CORPUS / entry["rttm"])
            yield Item("ami", entry["id"], entry["speakers"], samples, speech_spans(samples), truth)


def score(item: Item, diarize: Diarize, given: bool) -> Row:
    started = time.perf_counter()
    result = diarize(item.samples, item.spans, item.speakers if given else None)
    seconds = time.perf_counter() - started
    der = diarization_error_rate(item.truth, result.turns, collar=0.25)
    one = diarization_error_rate(item.truth, [SpeakerTurn(s.start, s.end, "X") for s in item.spans], collar=0.25)
    return Row(item, len({t.speaker for t in result.turns}), der.der * der.total, der.total, one.der, seconds)


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def default_before() -> str:
    """The merge-base with ``main``, or the diarizer's previous version when the merge-base has today's."""
    paths = [f"src/auricle/engine/{name}" for name in DIARIZER_FILES]
    base = _git("merge-base", "HEAD", "main").stdout.strip()
    if base and _git("diff", "--quiet", base, "--", *paths).returncode == 1:
        return base
    last = _git("log", "-1", "--format=%H", "--", *paths).stdout.strip()
    return f"{last}^"


def diarizer_at(rev: str) -> type:
    """``ResemblyzerDiarizer`` as it was at ``rev``: its modules from git, imported as package ``auricle_before``."""
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "auricle_before"
        package.mkdir()
        (package / "__init__.py").write_text("")
        for name in DIARIZER_FILES:
            shown = _git("show", f"{rev}:src/auricle/engine/{name}")
            if shown.returncode:
                raise SystemExit(f"cannot load the diarizer at {rev}: {shown.stderr.strip()}")
            source = shown.stdout.replace("auricle.engine._clustering", "auricle_before._clustering")
            (package / name).write_text(source)
        sys.path.insert(0, tmp)
        try:
            module = importlib.import_module("auricle_before.diarize")
        finally:
            sys.path.remove(tmp)
    diarizer: type = module.ResemblyzerDiarizer
    return diarizer


def contenders(before: str) -> dict[str, Diarize]:
    def wrap(d: ResemblyzerDiarizer) -> Diarize:
        def run(samples: np.ndarray, spans: list[SpeechSpan], n: int | None) -> DiarizationResult:
            if n is None:
                return d.diarize(samples, spans, min_speakers=1, max_speakers=4)
            return d.diarize(samples, spans, num_speakers=n)

        return run

    return {"before": wrap(diarizer_at(before)()), "after": wrap(ResemblyzerDiarizer())}


def summarise(rows: list[Row]) -> str:
    total = sum(r.total for r in rows)
    der = sum(r.errors for r in rows) / total if total else 0.0
    one = sum(r.one_speaker * r.total for r in rows) / total if total else 0.0
    multi = [r for r in rows if r.item.speakers > 1]
    beats = sum(r.errors / r.total < r.one_speaker for r in multi if r.total)
    right = sum(r.found == r.item.speakers for r in rows)
    within = sum(abs(r.found - r.item.speakers) <= 1 for r in rows)
    speed = sum(r.seconds for r in rows) / (sum(len(r.item.samples) for r in rows) / 16000 / 60)
    return (
        f"{der:6.1%} {one:7.1%} {right:>3}/{len(rows):<3} {within:>3}/{len(rows):<3} "
        f"{beats:>3}/{len(multi):<3} {speed:6.2f}s"
    )


def main(seeds: list[int], before: str | None = None) -> None:
    before = before or default_before()
    commit = _git("rev-parse", "--short", before).stdout.strip() or before
    print(f"before: the diarizer at {commit}; after: the working tree", file=sys.stderr)
    runs = contenders(before)
    rows: dict[tuple[str, str, bool], list[Row]] = {}
    for item in items(seeds):
        for name, diarize in runs.items():
            for given in (False, True):
                if given and item.speakers == 1:
                    continue
                row = score(item, diarize, given)
                rows.setdefault((item.set, name, given), []).append(row)
                print(
                    f"{item.set:<12} {item.name:<36} {name:<6} {'given' if given else 'auto':<5} "
                    f"speakers {row.found}/{item.speakers} DER {row.errors / max(row.total, 1e-9):6.1%} "
                    f"(one speaker {row.one_speaker:6.1%})",
                    file=sys.stderr,
                )
    print(f"before = the diarizer at {commit}, after = the working tree")
    print_table(rows, list(runs))


def print_table(rows: dict[tuple[str, str, bool], list[Row]], versions: list[str], set_width: int = 13) -> None:
    """One line per (set, auto or given count, version), versions in the given order."""
    width = max(8, *(len(v) + 1 for v in versions))
    header = (
        f"{'set':<{set_width}}{'count':<6}{'version':<{width}}{'DER':>6} {'1-spk':>7} {'count ok':>7} {'±1':>7} "
        f"{'beats 1':>7} {'s/min':>7}"
    )
    print(header)
    print("-" * len(header))
    for (set_name, name, given), set_rows in sorted(
        rows.items(), key=lambda kv: (kv[0][0], kv[0][2], versions.index(kv[0][1]))
    ):
        print(f"{set_name:<{set_width}}{'given' if given else 'auto':<6}{name:<{width}}{summarise(set_rows)}")
