"""Package data of pipelines.knowledge, read with importlib.resources; no Python API."""

__all__: list[str] = []
