"""Package data of pipelines.analytics, read with importlib.resources; no Python API."""

__all__: list[str] = []
