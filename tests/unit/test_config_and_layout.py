"""Settings, the README's configuration reference, public __all__ lists and the import contract."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import auricle
from auricle.config import Settings, reference

ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_reference_matches_settings():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- config:start -->\n", 1)[1].split("<!-- config:end -->", 1)[0]
    generated = subprocess.run(
        [sys.executable, "-m", "auricle", "config", "--markdown"], capture_output=True, text=True, check=True
    ).stdout
    assert section == generated, "regenerate the README table with `auricle config --markdown`"
    assert {row["env"] for row in reference()} >= {"AURICLE_API_KEYS", "AURICLE_STREAMING__SESSION_LIMIT"}


def test_list_settings_accept_commas_and_json(monkeypatch):
    monkeypatch.setenv("AURICLE_API_KEYS", "sekrit-a, sekrit-b")
    monkeypatch.setenv("AURICLE_PRELOAD_MODELS", '["tiny.en", "base"]')
    monkeypatch.setenv("AURICLE_STREAMING__SESSION_LIMIT", "3")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.api_keys] == ["sekrit-a", "sekrit-b"]
    assert settings.preload_models == ["tiny.en", "base"]
    assert settings.streaming.session_limit == 3
    assert "sekrit" not in repr(settings)


def test_toml_file_is_read_and_environment_wins(tmp_path, monkeypatch):
    config = tmp_path / "auricle.toml"
    config.write_text('default_model = "tiny.en"\nport = 9999\n')
    monkeypatch.setenv("AURICLE_CONFIG_FILE", str(config))
    monkeypatch.setenv("AURICLE_PORT", "8000")
    settings = Settings()
    assert settings.default_model == "tiny.en" and settings.port == 8000


def _modules():
    for info in pkgutil.walk_packages(auricle.__path__, "auricle."):
        yield info.name


def test_public_modules_declare_all():
    for name in _modules():
        if name.rsplit(".", 1)[-1].startswith("_") or name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        for item in exported:
            assert hasattr(module, item), f"{name}.__all__ names missing {item}"
