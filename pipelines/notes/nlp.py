"""Spark NLP pipelines for notes: documents, sentences and rule matches.

Everything here is open-source Spark NLP configured from the data files in
``resources/`` (no pretrained model is downloaded):

* ``DocumentAssembler`` → ``SentenceDetector`` give the sentences ConText works in;
* a ``RegexMatcher`` finds PHI candidates over the whole document; each rule's identifier
  tells the Python side what matched.

The annotation columns are then reduced to plain ``(begin, end, identifier)`` arrays,
so the Python steps (:mod:`.assertion_context`, :mod:`.deid`, :mod:`.findings`) receive small Arrow
batches through ``mapInArrow`` rather than Spark NLP's full annotation structs.

Two kinds of rules run in Python instead, compiled once per worker, because on the JVM every
rule scans every character of every note: the concept and section lexicons (a literal
prefilter skips the rules whose words a note does not contain, :mod:`.lexicon`; as 116
``RegexMatcher`` rules they took more than half of the pipeline's time), and the ConText
trigger terms, matched only in the sentences that hold a mention.

Fitting a rule-only pipeline reads no data, but it is a Spark job: :func:`model` fits each
pipeline once per Spark application and reuses the ``PipelineModel``.
"""

from __future__ import annotations

from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.notes import assertion_context

# Spark NLP spans are inclusive ``[begin, end]``; the Python side uses ``[begin, end)``.
SPAN_FIELDS = "array<struct<b:int,e:int,i:string>>"


def _regex_matcher(rules: list[tuple[str, str]], input_col: str, output_col: str):
    from sparknlp.annotator import RegexMatcher

    # A control character as delimiter: rule regexes may contain any printable character.
    delim = "\u0001"
    return (
        RegexMatcher()
        .setInputCols([input_col])
        .setOutputCol(output_col)
        .setStrategy("MATCH_ALL")
        .setDelimiter(delim)
        .setRules([f"{rx}{delim}{ident}" for rx, ident in rules])
    )


def base_stages(text_col: str) -> list:
    """Document → sentences, configured for clinical notes."""
    from sparknlp.annotator import SentenceDetector
    from sparknlp.base import DocumentAssembler

    document = (
        DocumentAssembler().setInputCol(text_col).setOutputCol("document")
        # Offsets must point into the text as stored: no cleanup, no trimming.
        .setCleanupMode("disabled")
    )
    sentence = (
        SentenceDetector().setInputCols(["document"]).setOutputCol("sentence")
        # A blank line always ends a sentence: notes put headers and list items on their own
        # lines without final punctuation.
        .setCustomBounds(["\n\n", "\r\n\r\n"])
        .setMaxLength(2000)
        # The abbreviation pass costs two thirds of the detector's time; in notes it only
        # keeps "Dr." / "Mr." from ending a sentence, which merge_title_breaks restores.
        .setUseAbbreviations(False)
    )
    return [document, sentence]


def fit(stages: list, spark, text_col: str) -> PipelineModel:
    """Fit a rule-only pipeline (fitting reads no data; it only materialises the rules)."""
    empty = spark.createDataFrame([("",)], f"{text_col} string")
    return Pipeline(stages=stages).fit(empty)


_MODELS: dict[tuple[str, str], PipelineModel] = {}


def model(spark, kind: str) -> PipelineModel:
    """The fitted pipeline ``kind`` (deid | sentences) of this Spark application, fitted on
    first use."""
    key = (spark.sparkContext.applicationId, kind)
    if key not in _MODELS:
        stages = {"deid": deid_stages, "sentences": sentence_stages}[kind]()
        _MODELS[key] = fit(stages, spark, "text")
    return _MODELS[key]


def spans(col: str) -> Column:
    """Annotation array → ``array<struct<b, e, i>>`` with exclusive ends (the matched text is
    not carried: the Python side slices the note it already has)."""
    return F.transform(
        F.col(col),
        lambda a: F.struct(
            a["begin"].alias("b"),
            (a["end"] + 1).alias("e"),
            a["metadata"]["identifier"].alias("i"),
        ),
    )


def annotate(model: PipelineModel, df: DataFrame, keep: list[str],
             span_cols: list[str]) -> DataFrame:
    """Run ``model`` and keep ``keep`` columns plus compact span arrays for ``span_cols``."""
    out = model.transform(df)
    cols = [F.col(c) for c in keep]
    for c in span_cols:
        cols.append(spans(c).alias(c))
    return out.select(*cols)


# ----------------------------------------------------------------------------- models
def deid_stages() -> list:
    """The PHI RegexMatcher over the whole document (a name or an address may straddle what a
    sentence detector calls a boundary); tokens for the name lexicon come from Python."""
    from pipelines.notes import deid

    return [base_stages("text")[0], _regex_matcher(deid.matcher_rules(), "document", "phi")]


def sentence_stages() -> list:
    """Documents and sentences: the findings stage and the context command (concepts and
    section headers are matched on the whole note in Python, so a sentence split inside
    "ECOG 1." loses nothing)."""
    return base_stages("text")


def _fields(schema, names: list[str]) -> str:
    return ", ".join(f"`{n}` {schema[n].dataType.simpleString()}" for n in names)


def _run_python(df: DataFrame, passthrough: list[str], new_fields: str, fn) -> DataFrame:
    """Apply ``fn(row_dict) -> dict`` of the new fields to every row through ``mapInArrow``,
    carrying ``passthrough`` columns unchanged."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import _parse_datatype_string

    out_schema = ", ".join(x for x in (_fields(df.schema, passthrough), new_fields) if x)
    arrow_schema = to_arrow_schema(_parse_datatype_string(out_schema))

    def batches(iterator):
        for batch in iterator:
            out = [{**{c: r[c] for c in passthrough}, **fn(r)} for r in batch.to_pylist()]
            yield pa.RecordBatch.from_pylist(out, schema=arrow_schema)

    return df.mapInArrow(batches, out_schema)


# ----------------------------------------------------------------------------- row functions
def _spans(rows) -> list:
    return rows or []


def deid_row(r: dict) -> dict:
    from pipelines.notes import deid

    text = r["text"] or ""
    cands = [deid.Candidate(a["b"], a["e"], a["i"]) for a in _spans(r["phi"])]
    toks = assertion_context.token_offsets(text)
    res = deid.deidentify(text, cands, toks, int(r["shift_days"] or 0), r.get("surrogate_seed"))
    return {"text_deid": res.text,
            "phi_spans": [{"begin": s.begin, "end": s.end, "type": s.type} for s in res.spans]}


def _sentences(text: str, rows) -> list:
    spans = [assertion_context.Span(a["b"], a["e"]) for a in _spans(rows)]
    return assertion_context.merge_title_breaks(text, spans)


def findings_row(r: dict) -> dict:
    from pipelines.notes import findings

    text = r["text"] or ""
    concepts, headers = findings.find_mentions(text)
    found = findings.extract(text, _sentences(text, r["sentence"]), concepts, headers)
    return {"findings": [
        {"finding_id": findings.finding_id(r["note_id"], f), "concept": f.concept,
         "category": f.category, "value": f.value, "comparator": f.comparator,
         "context": f.context, "section": f.section,
         "start": f.start, "end": f.end, "snippet": f.snippet}
        for f in found]}


def context_row(r: dict) -> dict:
    text = r["text"] or ""
    target = assertion_context.find_target(text, r["target"] or "")
    if target is None:
        return {"status": "affirmed", "modifiers": [], "target_found": False}
    sent = next((s for s in _sentences(text, r["sentence"]) if s.begin <= target.begin < s.end),
                assertion_context.Span(0, len(text)))
    res = assertion_context.classify(sent, assertion_context.tokenize(text, sent),
                                     assertion_context.find_triggers(text, sent), target)
    return {"status": res.status, "modifiers": sorted(m.lower() for m in res.modifiers),
            "target_found": True}


PHI_SPANS = "array<struct<begin:int,end:int,type:string>>"
FINDINGS = ("array<struct<finding_id:string,concept:string,category:string,value:string,"
            "comparator:string,context:string,section:string,start:int,end:int,snippet:string>>")


# ----------------------------------------------------------------------------- DataFrame API
def deidentify(spark, df: DataFrame, passthrough: list[str]) -> DataFrame:
    """``df`` (text, shift_days, passthrough...) → passthrough + text_deid + phi_spans.
    A ``surrogate_seed`` column (the patient's secret seed) asks for surrogates instead of
    masks (:mod:`.surrogates`); it is read, never passed through."""
    extra = ["surrogate_seed"] if "surrogate_seed" in df.columns else []
    keep = list(dict.fromkeys([*passthrough, "text", "shift_days", *extra]))
    ann = annotate(model(spark, "deid"), df.select(*keep), keep, ["phi"])
    return _run_python(ann, passthrough, f"text_deid string, phi_spans {PHI_SPANS}", deid_row)


def extract_findings(spark, df: DataFrame, passthrough: list[str]) -> DataFrame:
    """``df`` (note_id, text, passthrough...) → passthrough + findings array."""
    keep = list(dict.fromkeys([*passthrough, "note_id", "text"]))
    ann = annotate(model(spark, "sentences"), df.select(*keep), keep, ["sentence"])
    return _run_python(ann, list(dict.fromkeys([*passthrough, "note_id"])),
                       f"findings {FINDINGS}", findings_row)


def context_status(spark, df: DataFrame, passthrough: list[str]) -> DataFrame:
    """``df`` (text = sentence, target, passthrough...) → passthrough + status, modifiers."""
    keep = list(dict.fromkeys([*passthrough, "text", "target"]))
    ann = annotate(model(spark, "sentences"), df.select(*keep), keep, ["sentence"])
    return _run_python(ann, passthrough,
                       "status string, modifiers array<string>, target_found boolean",
                       context_row)
