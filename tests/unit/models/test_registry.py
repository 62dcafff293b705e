"""Model registry: names, aliases, bundled assembly (atomic, concurrent-safe), clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from auricle.config import Settings
from auricle.errors import ModelUnavailableError, UnknownModelError
from auricle.models.registry import ModelRegistry


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"))


def test_aliases_map_to_default_and_canonical(registry):
    assert registry.canonical("whisper-1") == "base"
    assert registry.canonical(None) == "base"
    assert registry.canonical("Systran/faster-whisper-large-v3") == "large-v3"
    assert registry.canonical("turbo") == "large-v3-turbo"


def test_bundled_models_are_installed(registry):
    infos = {m.id: m for m in registry.list()}
    assert infos["tiny.en"].installed and not infos["tiny.en"].multilingual
    assert infos["base"].installed and infos["base"].multilingual and infos["base"].default
    assert infos["base"].size_bytes > 100_000_000


def test_unknown_model_lists_available(registry):
    with pytest.raises(UnknownModelError) as err:
        registry.resolve("no-such-model")
    assert "tiny.en" in err.value.message and "base" in err.value.message


def test_hub_model_offline_says_how_to_provide_it(registry):
    with pytest.raises(ModelUnavailableError, match="AURICLE_ALLOW_DOWNLOAD"):
        registry.resolve("large-v3")


def test_model_directory_by_path(registry):
    tiny = registry.resolve("tiny.en")
    assert registry.resolve(str(tiny)) == tiny.resolve()


_ASSEMBLE = """
import sys
from pathlib import Path
from auricle.config import Settings
from auricle.models.registry import ModelRegistry
print(ModelRegistry(Settings(cache_dir=Path(sys.argv[1]))).resolve("base"))
"""


def test_split_model_is_assembled_once_atomically_by_concurrent_processes(tmp_path):
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen([sys.executable, "-c", _ASSEMBLE, str(cache)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outputs)) == 1
    target = Path(outputs[0])
    registry = ModelRegistry(Settings(cache_dir=cache))
    assert (target / "model.bin").stat().st_size == registry.info("base").size_bytes
    assert not list(target.glob("*.tmp")), "no temporary files are left behind"
    for name in ("config.json", "tokenizer.json"):
        assert (target / name).is_file()


def test_manager_loads_once_and_evicts_idle_models(registry):
    import time

    from auricle.models.manager import ModelManager

    loads = []
    manager = ModelManager(registry, lambda name, path: loads.append(name) or object(), idle_ttl_s=0.05)
    first = manager.get("whisper-1")
    assert manager.get("base") is first and loads == ["base"]
    with manager.use("base"):
        time.sleep(0.1)
        assert manager.evict_idle() == []  # borrowed models stay
    time.sleep(0.1)
    assert manager.evict_idle() == ["base"] and not manager.is_loaded("base")


def test_names_other_servers_and_clients_use_resolve(registry):
    # Given the names OpenASR, speaches and OpenAI-style clients send
    # When they are resolved
    # Then each reaches the same registry model, whatever the case
    for name in (
        "whisper-tiny.en",
        "Whisper-Tiny.EN",
        "openai/whisper-tiny.en",
        "faster-whisper-tiny.en",
        "Systran/faster-whisper-tiny.en",
        "tiny-en",
        "TINY.EN",
    ):
        assert registry.canonical(name) == "tiny.en", name
    assert registry.canonical("whisper-base") == "base"
    assert registry.canonical("Systran/faster-distil-whisper-large-v3") == "distil-large-v3"
    assert registry.canonical("WHISPER-1") == "base"
    assert registry.resolve("whisper-tiny.en").is_dir()


def test_unknown_prefixed_name_lists_what_exists(registry):
    with pytest.raises(UnknownModelError) as caught:
        registry.resolve("whisper-nonexistent")
    assert "whisper-nonexistent" in str(caught.value) and "tiny.en" in str(caught.value)
