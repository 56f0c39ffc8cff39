"""oncorank: a batch precision-oncology pipeline on Apache Spark and Delta Lake.

``cli`` is the ``oncorank`` command; ``stages`` lists the pipeline's stages and ``runner``
runs them in order; ``catalog`` is the regimen catalog every stage shares. Each stage's
package (``clinical``, ``genomics``, ``notes``, ``features``, ``models``, ``ranking``,
``reports``) names its public modules in its own ``__all__``; ``lakehouse`` is the runtime
they share (settings, Spark session, Delta I/O, audit).
"""

# Imported on use: importing the package itself imports nothing.
__all__ = ["analytics", "catalog", "cli", "clinical", "demo", "features", "genomics",
           "knowledge", "lakehouse", "models", "notes", "quality", "ranking", "reports",
           "runner", "stages", "synth", "tally"]
