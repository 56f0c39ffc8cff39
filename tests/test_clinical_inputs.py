"""ingest-clinical / comorbidities input handling: unconfigured, missing and malformed inputs."""

from __future__ import annotations

import pytest

from pipelines.lakehouse.settings import Inputs, Settings


def test_missing_and_unconfigured_inputs(spark, tmp_path):
    from pipelines.clinical.stage import compute_comorbidities, ingest_clinical
    from pipelines.lakehouse.errors import InputNotFoundError, SchemaMismatchError

    base = Settings(lakehouse=tmp_path / "lh", shuffle_partitions=2, spark_master="local[2]")
    run = ingest_clinical(spark, base)
    assert (run.status, run.rows_in, run.rows_written) == ("succeeded", 0, 0)
    assert compute_comorbidities(spark, base).rows_in == 0
    with pytest.raises(InputNotFoundError, match="FHIR input folder"):
        ingest_clinical(spark, base.replace(inputs=Inputs(fhir=str(tmp_path / "nope"))))
    bad_csv = tmp_path / "csv"
    bad_csv.mkdir()
    (bad_csv / "treatments.csv").write_text("patient_id,medication,start_date\nX,y,2020-01-01\n")
    with pytest.raises(SchemaMismatchError, match="drug"):
        ingest_clinical(spark, base.replace(inputs=Inputs(clinical_csv=str(bad_csv))))


def test_csv_header_check_names_file_and_columns(spark, tmp_path):
    from pipelines.clinical.csv_input import read_csv_table
    from pipelines.lakehouse.errors import SchemaMismatchError

    path = tmp_path / "outcomes.csv"
    path.write_text("id,death_date\nA,2020-01-01\n")
    with pytest.raises(SchemaMismatchError) as err:
        read_csv_table(spark, "outcomes", path)
    msg = str(err.value)
    assert "outcomes.csv" in msg and "patient_id" in msg and "found id, death_date" in msg
