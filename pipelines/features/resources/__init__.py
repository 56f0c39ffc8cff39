"""Package data of pipelines.features, read with importlib.resources; no Python API."""

__all__: list[str] = []
