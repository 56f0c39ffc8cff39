"""Package data of pipelines.notes, read with importlib.resources; no Python API."""

__all__: list[str] = []
