"""Package data of pipelines, read with importlib.resources; no Python API."""

__all__: list[str] = []
