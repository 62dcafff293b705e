"""See the package modules."""

__all__: list[str] = []
