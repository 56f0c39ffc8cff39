"""Package data of pipelines.clinical, read with importlib.resources; no Python API."""

__all__: list[str] = []
