"""Fixtures shared by every test; the helpers behind them live in ``support.py`` (importable by name, unlike a
conftest, of which pytest loads several under the same module name)."""

from support import corpus, runtime, server

__all__ = ["corpus", "runtime", "server"]
