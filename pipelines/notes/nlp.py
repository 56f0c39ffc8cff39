"""Spark NLP pipelines for notes: documents, sentences, tokens and rule matches.

Everything here is open-source Spark NLP configured from the data files in
``resources/`` (no pretrained model is downloaded):

* ``DocumentAssembler`` → ``SentenceDetector`` → ``Tokenizer`` give sentences and tokens;
* ``RegexMatcher`` stages find ConText trigger terms, PHI candidates, oncology concepts and
  section headers; each rule's identifier tells the Python side what matched.

The annotation columns are then reduced to plain ``(begin, end, text, identifier)`` arrays,
so the Python steps (:mod:`.context`, :mod:`.deid`, :mod:`.findings`) receive small Arrow
batches through ``mapInPandas`` rather than Spark NLP's full annotation structs.
"""

from __future__ import annotations

from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pipelines.notes import context

# Spark NLP spans are inclusive ``[begin, end]``; the Python side uses ``[begin, end)``.
SPAN_FIELDS = "array<struct<b:int,e:int,r:string,i:string>>"


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
    """Document → sentences → tokens, configured for clinical notes."""
    from sparknlp.annotator import SentenceDetector, Tokenizer
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
    )
    token = Tokenizer().setInputCols(["sentence"]).setOutputCol("token")
    return [document, sentence, token]


def context_stages() -> list:
    """The ConText trigger matcher (reads ``sentence``, writes ``context_trigger``)."""
    return [_regex_matcher(context.matcher_rules(), "sentence", "context_trigger")]


def fit(stages: list, spark, text_col: str) -> PipelineModel:
    """Fit a rule-only pipeline (fitting reads no data; it only materialises the rules)."""
    empty = spark.createDataFrame([("",)], f"{text_col} string")
    return Pipeline(stages=stages).fit(empty)


def spans(col: str) -> Column:
    """Annotation array → ``array<struct<b, e, r, i>>`` with exclusive ends."""
    return F.transform(
        F.col(col),
        lambda a: F.struct(
            a["begin"].alias("b"),
            (a["end"] + 1).alias("e"),
            a["result"].alias("r"),
            a["metadata"]["identifier"].alias("i"),
        ),
    )


def token_spans(col: str = "token") -> Column:
    """Token annotations → ``array<struct<b, e>>`` (only offsets travel to Python)."""
    return F.transform(F.col(col), lambda a: F.struct(a["begin"].alias("b"),
                                                      (a["end"] + 1).alias("e")))


def annotate(model: PipelineModel, df: DataFrame, keep: list[str],
             span_cols: list[str]) -> DataFrame:
    """Run ``model`` and keep ``keep`` columns plus compact span arrays for ``span_cols``."""
    out = model.transform(df)
    cols = [F.col(c) for c in keep]
    for c in span_cols:
        cols.append(token_spans(c).alias(c) if c == "token" else spans(c).alias(c))
    return out.select(*cols)
