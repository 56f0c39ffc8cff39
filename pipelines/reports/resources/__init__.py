"""Package data of pipelines.reports, read with importlib.resources; no Python API."""

__all__: list[str] = []
