"""Clinical notes: ingestion, Spark NLP de-identification, oncology findings with their
ConText status (``ingest-notes``, ``deidentify-notes``, ``extract-note-findings``)."""

# The public modules, imported on use (``from pipelines.notes import stage``): importing the
# package itself stays free of Spark.
__all__ = ["assertion_context", "commands", "deid", "deid_eval", "findings", "results_eval",
           "stage"]
