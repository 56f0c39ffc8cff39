"""Package data of pipelines.ranking, read with importlib.resources; no Python API."""

__all__: list[str] = []
