"""Package data of pipelines.lakehouse, read with importlib.resources; no Python API."""

__all__: list[str] = []
