"""``auricle eval`` end to end on recordings of the public corpus manifest, its figures checked independently.

The manifest written here holds lines copied verbatim from the corpus manifest (paths stay relative: the
corpus's ``audio`` and ``rttm`` folders are linked next to it) plus one line whose audio does not exist. WER and
CER are recomputed with jiwer on the reported text, and DER with a brute-force computation below (every mapping
of hypothesis to reference speakers tried, 10 ms frames) on the turns the same diarizer gives for the same VAD
spans.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import wave

import jiwer
import numpy as np
import pytest

from auricle.cli import main
from auricle.engine.decode import decode
from auricle.engine.types import SpeakerTurn
from auricle.evaluation.metrics import normalize_basic, normalize_english
from auricle.evaluation.runner import read_rttm

from support import CORPUS

pytestmark = [pytest.mark.slow, pytest.mark.model]

IDS = [
    "en_jfk_inaugural",
    "en_librispeech_1995-1837-0001",
    "zh_aishell_BAC009S0724W0121",
    "en_ami_excerpt_dev00",
    "en_ami_excerpt_trn02",
]


def _der(reference: list[SpeakerTurn], hypothesis: list[SpeakerTurn], collar: float) -> float:
    """md-eval-style DER, the slow obvious way."""
    frames = int(np.ceil(max(t.end for t in [*reference, *hypothesis]) * 100)) + 1

    def activity(turns: list[SpeakerTurn]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for t in turns:
            out.setdefault(t.speaker, np.zeros(frames, bool))[round(t.start * 100) : round(t.end * 100)] = True
        return out

    ref, hyp = activity(reference), activity(hypothesis)
    scored = np.ones(frames, bool)
    for t in reference:
        for edge in (t.start, t.end):
            scored[max(0, round((edge - collar) * 100)) : round((edge + collar) * 100)] = False
    n_ref = sum(a.astype(int) for a in ref.values())[scored]
    n_hyp = (sum(a.astype(int) for a in hyp.values()) if hyp else np.zeros(frames, int))[scored]
    best = 0
    refs, hyps = list(ref), list(hyp)
    for perm in itertools.permutations(hyps, min(len(hyps), len(refs))):
        for chosen in itertools.combinations(refs, len(perm)):
            best = max(best, sum(int((ref[r] & hyp[h])[scored].sum()) for r, h in zip(chosen, perm, strict=True)))
    errors = np.maximum(n_ref - n_hyp, 0).sum() + np.maximum(n_hyp - n_ref, 0).sum()
    errors += np.minimum(n_ref, n_hyp).sum() - best
    return float(errors / n_ref.sum())


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, dict[str, dict]]:
    root = tmp_path_factory.mktemp("eval")
    (root / "audio").symlink_to(CORPUS / "audio")
    (root / "rttm").symlink_to(CORPUS / "rttm")
    lines = [line for line in (CORPUS / "manifest.jsonl").read_text().splitlines() if json.loads(line)["id"] in IDS]
    lines.append(json.dumps({"id": "missing", "audio": "audio/does-not-exist.wav", "reference": "nothing"}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["eval", str(root / "manifest.jsonl"), "--model", "base", "--diarize", "--json"])
    document = json.loads(out.getvalue())
    return status, document, {f["id"]: f for f in document["files"]}


def test_exit_status_and_failure_reason(evaluated):
    status, document, files = evaluated
    # Then a file that cannot be processed fails the run, with its reason, and the others are still scored
    assert status == 1
    assert files["missing"]["error"]
    assert document["summary"]["failed"] == 1 and document["summary"]["files"] == len(IDS) + 1
    assert set(files) == {*IDS, "missing"}
    for key in ("wer", "cer", "der", "der_no_collar", "speakers", "speakers_expected", "language", "rtf"):
        assert key in files["en_jfk_inaugural"]


def test_word_and_character_error_rates_match_jiwer(evaluated, corpus):
    _, document, files = evaluated
    references = {e["id"]: e for e in corpus}
    for file_id in ("en_jfk_inaugural", "en_librispeech_1995-1837-0001"):
        reference = normalize_english(references[file_id]["reference"])
        expected = jiwer.wer(reference, normalize_english(files[file_id]["text"]))
        assert files[file_id]["wer"] == pytest.approx(expected)
        assert files[file_id]["wer"] < 0.2 and files[file_id]["cer"] is None
    zh = files["zh_aishell_BAC009S0724W0121"]
    reference = normalize_basic(references["zh_aishell_BAC009S0724W0121"]["reference"]).replace(" ", "")
    assert zh["cer"] == pytest.approx(jiwer.cer(reference, normalize_basic(zh["text"]).replace(" ", "")))
    assert zh["wer"] is None and zh["language"] == "zh" and zh["language_expected"] == "zh"
    english = [files["en_jfk_inaugural"]["wer"], files["en_librispeech_1995-1837-0001"]["wer"]]
    assert document["summary"]["mean_wer"] == pytest.approx(sum(english) / 2)
    assert document["summary"]["language_accuracy"] == 1.0


def test_der_matches_an_independent_computation(evaluated, runtime):
    _, document, files = evaluated
    # Given the same diarizer on the same VAD spans as the pipeline
    for file_id in ("en_ami_excerpt_dev00", "en_ami_excerpt_trn02"):
        samples = decode(CORPUS / "audio" / f"{file_id.removeprefix('en_')}.wav").samples
        result = runtime.diarizer.diarize(samples, runtime.vad.speech_spans(samples))
        truth = read_rttm(CORPUS / "rttm" / f"{file_id.removeprefix('en_')}.rttm")
        # Then eval's DER (with and without the collar) is the brute-force one
        assert files[file_id]["der"] == pytest.approx(_der(truth, result.turns, 0.25), abs=1e-3)
        assert files[file_id]["der_no_collar"] == pytest.approx(_der(truth, result.turns, 0.0), abs=1e-3)
        assert files[file_id]["speakers"] == len({t.speaker for t in result.turns})
    # And the near-silent excerpt gets no invented speakers
    assert files["en_ami_excerpt_trn02"]["speakers"] <= 1
    assert document["summary"]["der"] is not None


@pytest.fixture(scope="module")
def english_only(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, dict[str, dict]]:
    """``tiny.en`` over the stereo file, each of its channels saved as a mono file, and the Chinese clip."""
    root = tmp_path_factory.mktemp("eval-tiny-en")
    (root / "audio").symlink_to(CORPUS / "audio")
    entries = {e["id"]: e for e in map(json.loads, (CORPUS / "manifest.jsonl").read_text().splitlines())}
    stereo = entries["en_stereo_two_speakers"]
    channels = decode(CORPUS / stereo["audio"], keep_channels=True).channels
    assert channels is not None
    lines = [stereo, entries["zh_aishell_BAC009S0724W0121"]]
    for side, samples in zip(("left", "right"), channels, strict=True):
        with wave.open(str(root / f"{side}.wav"), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(np.round(samples * 32768).clip(-32768, 32767).astype("<i2").tobytes())
        lines.append({"id": side, "audio": f"{side}.wav", "reference": stereo["channel_references"][side]})
    (root / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["eval", str(root / "manifest.jsonl"), "--model", "tiny.en", "--json"])
    document = json.loads(out.getvalue())
    return status, document, {f["id"]: f for f in document["files"]}


def test_english_only_model_skips_other_languages_and_scores_stereo_channels_apart(english_only, corpus):
    status, document, files = english_only
    # Then the Chinese clip is skipped with the reason, which neither fails the run nor counts in any score
    assert status == 0
    assert files["zh_aishell_BAC009S0724W0121"]["skipped"] == (
        "model 'tiny.en' is English-only and the recording is in 'zh'"
    )
    assert files["zh_aishell_BAC009S0724W0121"]["cer"] is None and document["summary"]["mean_cer"] is None
    assert document["summary"]["skipped"] == 1 and document["summary"]["failed"] == 0
    # And each channel of the stereo file scores as that channel alone, saved as a mono file, does (checked with
    # jiwer on the mono files' text)
    references = {e["id"]: e for e in corpus}["en_stereo_two_speakers"]["channel_references"]
    stereo = files["en_stereo_two_speakers"]
    for index, side in enumerate(("left", "right")):
        expected = jiwer.wer(normalize_english(references[side]), normalize_english(files[side]["text"]))
        assert files[side]["wer"] == pytest.approx(expected)
        assert stereo["channel_wer"][index] == pytest.approx(expected)
    # And the file's WER is pooled over the channels (not the 45 % of both talkers against one joined reference)
    assert min(stereo["channel_wer"]) <= stereo["wer"] <= max(stereo["channel_wer"]) < 0.2
