"""Package data of pipelines.genomics, read with importlib.resources; no Python API."""

__all__: list[str] = []
