"""One tumour VCF and no clinical record, the way PCGR is used:
``oncorank ingest vcf TUMOUR.vcf.gz --tumor-type BRCA``.

A VEP-annotated breast tumour with PIK3CA p.His1047Arg goes through the real ingest-variants
stage from the command line; without ``--tumor-type`` nothing can be called on label (the
tumour type is unknown), with it the alpelisib and capivasertib labels are tier I and their
context reads what the VCF cannot say (hormone-receptor status).
"""

from __future__ import annotations

import json

import pytest

from pipelines.lakehouse import delta
from pipelines.lakehouse.settings import Settings
from tests.test_actionable_canonical import _record, _vcf

PIK3CA = {"gene": "PIK3CA", "hgvsp": "p.His1047Arg", "consequence": "missense_variant",
          "exon": "21/21"}


@pytest.fixture()
def tumour_vcf(tmp_path):
    path = tmp_path / "TUMOUR.vcf"
    path.write_text(_vcf(["TUMOUR"], [_record(PIK3CA, "0/1")]))
    return path


def _evidence(path):
    summary = json.loads(path.read_text())
    assert len(summary) == 1
    return summary[0], {e["therapy"]: e for e in summary[0]["evidence"]}


def test_a_single_tumour_gets_tiered_evidence_with_label_context(spark, tmp_path, capsys,
                                                                  tumour_vcf):
    from pipelines.cli import main

    lakehouse, listing = tmp_path / "lh", tmp_path / "evidence.json"
    main(["ingest", "vcf", str(tumour_vcf), "--lakehouse", str(lakehouse),
          "--tumor-type", "brca", "--prior-lines", "1", "--json", str(listing)])
    printed = " ".join(capsys.readouterr().out.split())
    patient, evidence = _evidence(listing)
    assert patient["cancer_type"] == "BRCA"
    alpelisib = evidence["Alpelisib + Fulvestrant"]
    assert (alpelisib["tier"], alpelisib["alteration"]) == ("IA", "H1047R")
    # ER status is not in a VCF; HER2 is (ERBB2 not amplified in a sequenced tumour)
    assert alpelisib["label_context"] == "requirement unknown: HR status unknown"
    assert "tumour type BRCA:" in printed and "Alpelisib" in printed
    settings = Settings(lakehouse=lakehouse)
    declared = delta.read_table(spark, settings.table("silver", "declared_tumor_types"))
    assert [(r["cancer_type"], r["n_prior_lines"]) for r in declared.collect()] == [("BRCA", 1)]


@pytest.mark.slow
def test_without_a_tumour_type_nothing_is_on_label_and_a_declaration_is_kept(
        spark, tmp_path, capsys, tumour_vcf):
    from pipelines.cli import main
    from pipelines.genomics.stage import ingest_variants

    lakehouse, listing = tmp_path / "lh", tmp_path / "evidence.json"
    main(["ingest", "vcf", str(tumour_vcf), "--lakehouse", str(lakehouse), "--json",
          str(listing)])
    patient, evidence = _evidence(listing)
    assert patient["cancer_type"] is None
    assert not [e for e in evidence.values() if e["tier"] in ("IA", "IB")]
    assert "unknown (pass --tumor-type)" in capsys.readouterr().out

    main(["ingest", "vcf", str(tumour_vcf), "--lakehouse", str(lakehouse),
          "--tumor-type", "BRCA"])
    # a later run of the stage without the option still knows the declared type
    settings = Settings(lakehouse=lakehouse)
    ingest_variants(spark, settings.replace(inputs=settings.inputs.__class__(
        vcf=(str(tumour_vcf),))))
    rows = delta.read_table(spark, settings.table("silver", "actionable_alterations"))
    assert {r["patient_cancer_type"] for r in rows.collect()} == {"BRCA"}


def test_an_unknown_tumour_type_is_one_sentence_before_spark(tmp_path, capsys, tumour_vcf):
    from pipelines.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["ingest", "vcf", str(tumour_vcf), "--lakehouse", str(tmp_path / "lh"),
              "--tumor-type", "BRAC"])
    err = capsys.readouterr().err
    assert exc.value.code != 0 and "not an OncoTree code" in err and "Traceback" not in err
