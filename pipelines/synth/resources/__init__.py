"""Package data of pipelines.synth, read with importlib.resources; no Python API."""

__all__: list[str] = []
