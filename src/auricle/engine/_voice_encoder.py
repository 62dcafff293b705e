"""Resemblyzer's speaker encoder, run in numpy from the ``pretrained.pt`` shipped in the ``resemblyzer`` wheel.

The network is a 3-layer LSTM (hidden 256) over 40-band mel power frames (16 kHz, 25 ms window, 10 ms hop),
then linear 256 + ReLU and L2 normalisation. It is trained on partials of 160 frames (1.6 s).

The checkpoint is a legacy (pre-zip) torch pickle: a magic number, a protocol version, system info, the
object pickle whose tensors point at storages by key, the list of storage keys, then each storage's raw
bytes. It is read with :class:`_CheckpointUnpickler`, which resolves only the few globals a tensor state
dict needs to *our own* numpy reconstruction; any other global (``os.system``, ``builtins.eval`` ...)
is refused, so no code from the file runs on load. Torch is not needed.

The features replicate ``librosa.feature.melspectrogram`` (librosa 0.10+ defaults: centred frames with
zero padding, periodic Hann window, power 2, Slaney mel scale and Slaney area normalisation), which
Resemblyzer uses; note they are mel *power*, not log-mel.
"""

from __future__ import annotations

import collections
import io
import logging
import pickle
import struct
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "EMBEDDING_SIZE",
    "PARTIAL_FRAMES",
    "CheckpointError",
    "VoiceEncoder",
    "blas_limit",
    "default_weights_path",
    "gain_for_rms",
    "load_checkpoint",
    "mel_filterbank",
    "mel_spectrogram",
    "normalize_volume",
    "volume_gain",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160
"""Frames per partial utterance the encoder was trained on (1.6 s)."""
EMBEDDING_SIZE = 256
HIDDEN = 256
LAYERS = 3
NORM_TARGET_DBFS = -30.0
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_PROTOCOL = 1001


class CheckpointError(ValueError):
    """Raised when a checkpoint is malformed or asks to run code that the restricted unpickler forbids."""


# ---------------------------------------------------------------- checkpoint loading


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype[Any]
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype[Any]


def _rebuild_tensor_v2(storage: object, storage_offset: object, size: object, stride: object, *_: object) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: records where the tensor lives, reads nothing."""
    if not isinstance(storage, _StorageRef) or not isinstance(storage_offset, int):
        raise CheckpointError("malformed tensor record")
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride):
        raise CheckpointError("malformed tensor shape")
    if not all(isinstance(v, int) and v >= 0 for v in (*size, *stride)):
        raise CheckpointError("malformed tensor shape")
    return _TensorRef(storage, storage_offset, size, stride)


_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch", "FloatStorage"): _StorageType(np.dtype("<f4")),
    ("torch", "DoubleStorage"): _StorageType(np.dtype("<f8")),
    ("torch", "HalfStorage"): _StorageType(np.dtype("<f2")),
    ("torch", "LongStorage"): _StorageType(np.dtype("<i8")),
    ("torch", "IntStorage"): _StorageType(np.dtype("<i4")),
}


class _CheckpointUnpickler(pickle.Unpickler):
    """Unpickler that maps only the tensor-rebuild globals to harmless local stand-ins."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(f"checkpoint refers to forbidden global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        # Legacy format: ('storage', storage_type, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise CheckpointError("unsupported persistent id in checkpoint")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise CheckpointError("malformed storage record")
        if view is not None:
            raise CheckpointError("storage views are not supported")
        ref = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype, numel))
        if ref.numel != numel or ref.dtype != storage_type.dtype:
            raise CheckpointError("inconsistent storage records")
        return ref


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickler for the header records, which are plain data: every global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise CheckpointError(f"checkpoint header refers to forbidden global {module}.{name}")


def _materialise(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    data = storages[ref.storage.key]
    if ref.size and any(s == 0 for s in ref.size):
        return np.zeros(ref.size, dtype=data.dtype)
    last = ref.offset + sum((n - 1) * st for n, st in zip(ref.size, ref.stride, strict=True))
    if ref.offset < 0 or last >= len(data):
        raise CheckpointError("tensor reaches past its storage")
    strides = tuple(st * data.itemsize for st in ref.stride)
    view = np.lib.stride_tricks.as_strided(data[ref.offset :], shape=ref.size, strides=strides, writeable=False)
    return np.array(view, dtype=np.float32 if data.dtype.kind == "f" else data.dtype)


def load_checkpoint(source: str | Path | bytes) -> dict[str, np.ndarray]:
    """Read the model state of a legacy torch checkpoint into numpy arrays without torch and without running code.

    Args:
        source: a path to the ``.pt`` file, or its bytes.

    Returns:
        The ``model_state`` entries (or the top-level mapping, when there is no ``model_state``) as float32
        arrays, keyed by parameter name.

    Raises:
        CheckpointError: the file is not a legacy torch checkpoint, is truncated, or refers to any global
            outside the tensor-rebuild allow-list.
    """
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    f = io.BytesIO(raw)
    try:
        magic = _DataOnlyUnpickler(f).load()
        protocol = _DataOnlyUnpickler(f).load()
        sys_info = _DataOnlyUnpickler(f).load()
        if magic != _TORCH_MAGIC or protocol != _TORCH_PROTOCOL or not isinstance(sys_info, dict):
            raise CheckpointError("not a legacy torch checkpoint")
        if not sys_info.get("little_endian", False):
            raise CheckpointError("big-endian checkpoints are not supported")
        unpickler = _CheckpointUnpickler(f)
        obj = unpickler.load()
        keys = _DataOnlyUnpickler(f).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"unreadable checkpoint: {exc}") from exc
    if not isinstance(keys, list) or set(keys) != set(unpickler.storages):
        raise CheckpointError("storage key list does not match the tensors")

    storages: dict[str, np.ndarray] = {}
    for key in keys:
        ref = unpickler.storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise CheckpointError("truncated checkpoint")
        (numel,) = struct.unpack("<q", header)
        nbytes = numel * ref.dtype.itemsize
        if numel != ref.numel or f.tell() + nbytes > len(raw):
            raise CheckpointError("storage size mismatch or truncated checkpoint")
        storages[key] = np.frombuffer(raw, dtype=ref.dtype, count=numel, offset=f.tell())
        f.seek(nbytes, io.SEEK_CUR)

    state = obj.get("model_state", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError("checkpoint holds no state dict")
    return {str(k): _materialise(v, storages) for k, v in state.items() if isinstance(v, _TensorRef)}


def default_weights_path() -> Path:
    """Where the ``resemblyzer`` package keeps ``pretrained.pt``, found without importing it (it imports torch)."""
    import importlib.util

    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the resemblyzer package is not installed (pip install resemblyzer --no-deps)")
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


# ---------------------------------------------------------------- features


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa ``htk=False``)."""
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    log_t = f >= min_log_hz
    mels[log_t] = min_log_mel + np.log(f[log_t] / min_log_hz) / logstep
    return mels


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    log_t = m >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (m[log_t] - min_log_mel))
    return freqs


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-style triangular mel filters with area normalisation, shape (n_mels, 1 + n_fft // 2).

    Same as ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)`` (fmin 0, fmax sr/2).
    """
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([sr / 2.0]))[0], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


_FILTERBANK = mel_filterbank()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def mel_spectrogram(wav: np.ndarray, *, gain: float = 1.0, block: int = 1024) -> np.ndarray:
    """Mel power spectrogram, shape (1 + len(wav) // 160, 40), float32, as Resemblyzer computes it.

    Frames are centred (the signal is zero-padded by half a window on each side). The work is done in blocks
    of ``block`` frames, copying only each block's samples, so memory stays bounded on long audio. ``gain``
    gives the spectrogram of ``wav * gain`` without scaling a copy of the samples.
    """
    wav = np.asarray(wav, dtype=np.float32)
    n_frames = 1 + len(wav) // HOP
    out = np.empty((n_frames, N_MELS), dtype=np.float32)
    half = N_FFT // 2
    for start in range(0, n_frames, block):
        stop = min(n_frames, start + block)
        lo, hi = start * HOP - half, (stop - 1) * HOP + half
        chunk = wav[max(0, lo) : max(0, min(len(wav), hi))]
        if lo < 0 or hi > len(wav):
            chunk = np.pad(chunk, (max(0, -lo), max(0, hi - max(len(wav), lo))))
        frames = np.lib.stride_tricks.sliding_window_view(chunk, N_FFT)[::HOP]
        spec = np.fft.rfft(frames * _WINDOW, n=N_FFT, axis=1)
        power = (spec.real**2 + spec.imag**2).astype(np.float32)
        out[start:stop] = power @ _FILTERBANK.T
    if gain != 1.0:
        out *= np.float32(gain * gain)
    return out


def normalize_volume(wav: np.ndarray, target_dbfs: float = NORM_TARGET_DBFS) -> np.ndarray:
    """Raise (never lower) the level of ``wav`` to ``target_dbfs`` RMS, as Resemblyzer's preprocessing does."""
    gain = volume_gain(wav, target_dbfs)
    return wav if gain == 1.0 else (wav * gain).astype(np.float32)


def volume_gain(wav: np.ndarray, target_dbfs: float = NORM_TARGET_DBFS) -> float:
    """The factor :func:`normalize_volume` would apply (1.0 when the audio is already loud enough or silent)."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    return gain_for_rms(rms, target_dbfs)


def gain_for_rms(rms: float, target_dbfs: float = NORM_TARGET_DBFS) -> float:
    """The increase-only gain that brings a signal of RMS ``rms`` (full scale 1.0) to ``target_dbfs``."""
    if rms <= 0.0:
        return 1.0
    change = target_dbfs - 20 * np.log10(rms)
    return float(10 ** (change / 20)) if change > 0 else 1.0


# ---------------------------------------------------------------- network


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warnings for large negative inputs
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def blas_limit(threads: int | None) -> AbstractContextManager[object]:
    """Limit BLAS threads while in the block, with ``threadpoolctl`` when it is installed (else a no-op).

    The encoder's matrix products are small (a batch of windows by 1024 gates); OpenBLAS threads spinning
    against other busy processes can make them an order of magnitude slower, so one thread is the default.
    """
    if threads is None:
        return nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    limiter: AbstractContextManager[object] = threadpool_limits(limits=threads, user_api="blas")
    return limiter


class VoiceEncoder:
    """The Resemblyzer LSTM speaker encoder in numpy.

    Args:
        weights: path to Resemblyzer's ``pretrained.pt`` (default: the one in the installed package), or an
            already loaded state dict.
        blas_threads: BLAS threads for the encoder's matrix products (None: leave the process setting).
    """

    def __init__(
        self, weights: str | Path | dict[str, np.ndarray] | None = None, *, blas_threads: int | None = 1
    ) -> None:
        self.blas_threads = blas_threads
        state = weights if isinstance(weights, dict) else load_checkpoint(weights or default_weights_path())
        try:
            # PyTorch gate order is (input, forget, cell, output); the two biases are always summed.
            self._w_ih = [np.ascontiguousarray(state[f"lstm.weight_ih_l{i}"].T) for i in range(LAYERS)]
            self._w_hh = [np.ascontiguousarray(state[f"lstm.weight_hh_l{i}"].T) for i in range(LAYERS)]
            self._b = [state[f"lstm.bias_ih_l{i}"] + state[f"lstm.bias_hh_l{i}"] for i in range(LAYERS)]
            self._w_lin = np.ascontiguousarray(state["linear.weight"].T)
            self._b_lin = state["linear.bias"]
        except KeyError as exc:
            raise CheckpointError(f"checkpoint lacks parameter {exc}") from None
        if self._w_ih[0].shape != (N_MELS, 4 * HIDDEN) or self._w_lin.shape != (HIDDEN, EMBEDDING_SIZE):
            raise CheckpointError("checkpoint parameters have unexpected shapes")
        # Each layer takes [x, h] in one matrix product.
        self._w_cat = [np.concatenate([self._w_ih[i], self._w_hh[i]]) for i in range(LAYERS)]

    def embed_frames(self, mels: np.ndarray) -> np.ndarray:
        """Embed a batch of mel windows, shape (B, T, 40) -> (B, 256); T is normally 160 (1.6 s).

        Returns:
            L2-normalised, non-negative embeddings (float32).
        """
        with blas_limit(self.blas_threads):
            return self._embed_frames(np.asarray(mels, dtype=np.float32))

    def _embed_frames(self, mels: np.ndarray) -> np.ndarray:
        batch, steps, _ = mels.shape
        h = [np.zeros((batch, HIDDEN), dtype=np.float32) for _ in range(LAYERS)]
        c = [np.zeros((batch, HIDDEN), dtype=np.float32) for _ in range(LAYERS)]
        xh = [np.zeros((batch, (N_MELS if i == 0 else HIDDEN) + HIDDEN), dtype=np.float32) for i in range(LAYERS)]
        for t in range(steps):
            for layer in range(LAYERS):
                buf = xh[layer]
                split = buf.shape[1] - HIDDEN
                buf[:, :split] = mels[:, t] if layer == 0 else h[layer - 1]
                buf[:, split:] = h[layer]
                gates = buf @ self._w_cat[layer]
                gates += self._b[layer]
                i_g = _sigmoid(gates[:, :HIDDEN])
                f_g = _sigmoid(gates[:, HIDDEN : 2 * HIDDEN])
                g_g = np.tanh(gates[:, 2 * HIDDEN : 3 * HIDDEN])
                o_g = _sigmoid(gates[:, 3 * HIDDEN :])
                c[layer] = f_g * c[layer] + i_g * g_g
                h[layer] = o_g * np.tanh(c[layer])
        raw = np.maximum(h[-1] @ self._w_lin + self._b_lin, 0.0)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        out: np.ndarray = (raw / np.maximum(norms, 1e-12)).astype(np.float32)
        return out

    def embed_utterance(self, wav: np.ndarray, *, rate: float = 1.3, min_coverage: float = 0.75) -> np.ndarray:
        """Embed one utterance like ``resemblyzer.VoiceEncoder.embed_utterance`` (after its preprocessing).

        The utterance is cut into 1.6 s partials ``rate`` times per second, each partial is embedded, and the
        L2-normalised mean is returned. Volume normalisation is *not* applied here (see :func:`normalize_volume`).
        """
        n_frames = int(np.ceil((len(wav) + 1) / HOP))
        frame_step = max(1, int(np.round((SAMPLE_RATE / rate) / HOP)))
        starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + frame_step + 1), frame_step))
        coverage = (len(wav) - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
        if coverage < min_coverage and len(starts) > 1:
            starts = starts[:-1]
        needed = (starts[-1] + PARTIAL_FRAMES) * HOP
        if needed >= len(wav):
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = mel_spectrogram(wav)
        partials = self.embed_frames(np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts]))
        mean = partials.mean(axis=0)
        out: np.ndarray = (mean / np.linalg.norm(mean)).astype(np.float32)
        return out
