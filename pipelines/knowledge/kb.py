"""The actionability knowledge base: CIViC release + curated FDA/NCCN pairs, as data.

Where the data comes from (first that exists):

1. ``[knowledge] civic_dir`` in the config (relative paths are taken from the config file's
   folder; a configured folder that does not exist is an error);
2. the ``ONCORANK_KNOWLEDGE_DIR`` environment variable (same rule);
3. the release shipped with oncorank (``resources/releases``: CIViC 01-Aug-2024, CC0; OncoTree
   2025-10-03, CC BY 4.0; provenance in its README).

The folder holds CIViC's monthly TSVs (``civic_<DD-Mon-YYYY>-ClinicalEvidenceSummaries.tsv``
and ``...-AssertionSummaries.tsv``; the newest release is used) and an OncoTree JSON
(``oncotree_<date>.json``). Without CIViC the curated set alone is used; ``version`` says
which: ``civic-01-Aug-2024+curated-2026.12`` or ``curated-2026.12``.

Which CIViC items become entries: Predictive evidence that *supports* a Sensitivity/Response,
Resistance or Reduced Sensitivity significance, with a therapy, for a somatic or rare-germline
variant, whose molecular profile is one variant or an OR of single variants that
:func:`~pipelines.knowledge.alterations.parse_alteration` understands. Everything else is
counted in ``skipped`` by reason. Predictive assertions are added with their AMP/ASCO/CAP
level. CIViC content is public domain (CC0 1.0).

>>> kb = load_knowledge_base(None)
>>> kb.version.startswith("curated-")
True
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from pipelines.knowledge.alterations import Alteration, parse_alteration, split_profile
from pipelines.knowledge.labels import LabelTerms, parse_label
from pipelines.knowledge.oncotree import OncoTree
from pipelines.lakehouse.errors import ConfigError, InputNotFoundError

log = logging.getLogger("oncorank.knowledge")

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIR = Path(str(resources.files("pipelines.knowledge.resources").joinpath("releases")))
ENV_VAR = "ONCORANK_KNOWLEDGE_DIR"
_RELEASE = re.compile(r"civic_(\d{2}-[A-Za-z]{3}-\d{4})-ClinicalEvidenceSummaries\.tsv$")
SIGNIFICANCE = {"Sensitivity/Response": "sensitivity", "Resistance": "resistance",
                "Reduced Sensitivity": "resistance"}
AMP_LEVEL = {"Tier I - Level A": "A", "Tier I - Level B": "B", "Tier II - Level C": "C",
             "Tier II - Level D": "D"}


@dataclass(frozen=True)
class KbEntry:
    """One (alteration, tumour type, therapy, direction) statement with its source."""

    source: str  # civic | curated
    evidence_id: str  # EID<n>, AID<n> or the curated id
    gene: str | None  # None for patient-level biomarkers (TMB-H)
    alteration: Alteration
    disease: str
    disease_oncotree: str | None
    therapy: str
    drugs: tuple[str, ...]
    direction: str  # sensitivity | resistance
    significance: str
    evidence_level: str  # A-E (AMP/ASCO/CAP / CIViC evidence levels)
    approved: bool  # FDA label, guideline, or CIViC level A ("validated association")
    citation: str
    url: str | None = None
    doid: str | None = None
    exclude_oncotree: tuple[str, ...] = ()
    label: LabelTerms | None = None  # curated FDA entries: line and co-requirements


@dataclass(frozen=True)
class KnowledgeBase:
    entries: tuple[KbEntry, ...]
    version: str
    civic_release: str | None
    curated_version: str
    oncotree: OncoTree
    source_dir: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def gene_alterations(self) -> list[tuple[str | None, Alteration]]:
        """(gene, alteration) of every entry: what :func:`known_sites` reads."""
        return [(e.gene, e.alteration) for e in self.entries]

    def summary(self) -> dict:
        by_source = Counter(e.source for e in self.entries)
        return {"version": self.version, "entries": len(self.entries), **dict(by_source),
                "oncotree": self.oncotree.version, "skipped": dict(self.skipped)}


# ---------------------------------------------------------------------------- location
def knowledge_dir(settings) -> Path | None:
    """The knowledge folder for these settings (see the module docstring), or None."""
    configured = settings.section("knowledge").get("civic_dir") if settings else None
    if configured:
        p = Path(str(configured)).expanduser()
        if not p.is_absolute():
            base = Path(settings.config_file).parent if settings.config_file else REPO_ROOT
            p = base / p
        if not p.is_dir():
            raise InputNotFoundError(f"Knowledge folder {p} ([knowledge] civic_dir) does not "
                                     "exist; point it at a folder with the CIViC TSVs.")
        return p
    env = os.environ.get(ENV_VAR, "")
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise InputNotFoundError(f"Knowledge folder {p} ({ENV_VAR}) does not exist; "
                                     "unset it or point it at a folder with the CIViC TSVs.")
        return p
    return SHIPPED_DIR


def _latest_release(directory: Path) -> tuple[str, Path] | None:
    found = []
    for f in directory.glob("civic_*-ClinicalEvidenceSummaries.tsv"):
        m = _RELEASE.search(f.name)
        if m:
            found.append((dt.datetime.strptime(m.group(1), "%d-%b-%Y"), m.group(1), f))
    if not found:
        return None
    _, release, path = max(found)
    return release, path


# ---------------------------------------------------------------------------- loading
def load_oncotree(directory: Path | None) -> OncoTree:
    """The newest ``oncotree_<date>.json`` of the knowledge folder, else the minimal tree."""
    trees = sorted(Path(directory).glob("oncotree_*.json")) if directory is not None else []
    return OncoTree.load(trees[-1]) if trees else OncoTree.minimal()


def load_knowledge_base(directory: Path | None) -> KnowledgeBase:
    """Build the knowledge base from ``directory`` (CIViC + OncoTree) and the curated set."""
    oncotree = load_oncotree(directory)
    civic_entries: list[KbEntry] = []
    skipped: Counter = Counter()
    release = None
    if directory is not None:
        latest = _latest_release(Path(directory))
        if latest is not None:
            release, evidence_path = latest
            mapper = DiseaseMapper(oncotree)
            civic_entries += civic_evidence(evidence_path, mapper, skipped)
            assertions = evidence_path.with_name(f"civic_{release}-AssertionSummaries.tsv")
            if assertions.is_file():
                civic_entries += civic_assertions(assertions, mapper, skipped)
        else:
            log.warning("no CIViC release in %s; using the curated set only", directory)
    curated_version, curated = curated_entries(oncotree)
    version = (f"civic-{release}+curated-{curated_version}" if release
               else f"curated-{curated_version}")
    return KnowledgeBase(tuple(curated + civic_entries), version, release, curated_version,
                         oncotree, str(directory) if directory else None, dict(skipped))


def tumor_suppressors() -> frozenset[str]:
    """Genes whose truncating variants are oncogenic (resources/gene_roles.yaml)."""
    return frozenset(g.upper() for g in _resource("gene_roles.yaml")["tumor_suppressors"])


@cache
def _resource(name: str) -> dict:
    text = resources.files("pipelines.knowledge.resources").joinpath(name).read_text()
    return yaml.safe_load(text)


class DiseaseMapper:
    """CIViC disease (DOID, name) -> OncoTree code, through the curated table."""

    def __init__(self, oncotree: OncoTree):
        table = _resource("civic_disease_oncotree.yaml")
        self.by_doid = {str(k): v for k, v in table["doid"].items()}
        self.by_name = {k.lower(): v for k, v in (table.get("names") or {}).items()}
        self.oncotree_names = {n.lower(): c for c, n in oncotree.names.items()}

    def __call__(self, doid: str, name: str) -> str | None:
        doid = (doid or "").strip().lstrip("0") or ""
        for key in (doid, doid.zfill(7)):
            if key and key in self.by_doid:
                return self.by_doid[key]
        low = (name or "").strip().lower()
        return self.by_name.get(low) or self.oncotree_names.get(low)


def _therapies(text: str, interaction: str) -> list[tuple[str, tuple[str, ...]]]:
    """(display, drugs) per therapy option; a combination is one option."""
    names = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not names:
        return []
    if interaction in ("Combination", "Sequential") and len(names) > 1:
        names = sorted(names, key=str.lower)
        return [(" + ".join(names), tuple(n.lower() for n in names))]
    return [(n, (n.lower(),)) for n in names]


def _read_tsv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def civic_evidence(path: Path, mapper: DiseaseMapper, skipped: Counter) -> list[KbEntry]:
    rows = _read_tsv(path)
    required = {"molecular_profile", "disease", "doid", "therapies", "evidence_type",
                "evidence_direction", "evidence_level", "significance", "evidence_id"}
    missing = required - set(rows[0] if rows else {})
    if missing:
        raise ConfigError(f"CIViC file {path} lacks column(s) {sorted(missing)}; expected a "
                          "CIViC ClinicalEvidenceSummaries TSV (v2 molecular-profile schema).")
    out = []
    for r in rows:
        why = _skip_reason(r["evidence_type"], r["evidence_direction"], r["significance"],
                           r.get("variant_origin", ""), r["therapies"])
        if why:
            skipped[f"evidence: {why}"] += 1
            continue
        eid = f"EID{r['evidence_id']}"
        cite = (f"CIViC {eid}: {r.get('citation') or 'source'} ({r.get('source_type') or 'PubMed'}"
                f" {r.get('citation_id') or ''}".rstrip() + ")")
        made = _entries_for(r["molecular_profile"], r, "civic", eid, r["evidence_level"],
                            r["evidence_level"] == "A", cite, r.get("evidence_civic_url"),
                            mapper)
        if not made:
            skipped["evidence: profile not matchable from DNA variants"] += 1
        out += made
    return out


def civic_assertions(path: Path, mapper: DiseaseMapper, skipped: Counter) -> list[KbEntry]:
    out = []
    for r in _read_tsv(path):
        why = _skip_reason(r["assertion_type"], r["assertion_direction"], r["significance"],
                           "", r["therapies"])
        level = AMP_LEVEL.get(r.get("amp_category") or "")
        if why or level is None:
            skipped[f"assertion: {why or 'no AMP level'}"] += 1
            continue
        aid = f"AID{r['assertion_id']}"
        approved = r.get("regulatory_approval") == "true" or bool(r.get("nccn_guideline"))
        extra = []
        if r.get("nccn_guideline"):
            extra.append(f"NCCN {r['nccn_guideline']} v{r.get('nccn_guideline_version', '')}")
        if r.get("regulatory_approval") == "true":
            extra.append("FDA regulatory approval")
        cite = f"CIViC {aid} ({r.get('amp_category')}; {'; '.join(extra) or 'no approval'})"
        made = _entries_for(r["molecular_profile"], r, "civic", aid, level, approved, cite,
                            r.get("assertion_civic_url"), mapper)
        if not made:
            skipped["assertion: profile not matchable from DNA variants"] += 1
        out += made
    return out


def _skip_reason(kind: str, direction: str, significance: str, origin: str,
                 therapies: str) -> str | None:
    if kind != "Predictive":
        return f"{(kind or 'unknown').lower()} evidence"
    if direction != "Supports":
        return "does not support"
    if significance not in SIGNIFICANCE:
        return f"significance {significance}"
    if origin == "Common Germline":
        return "common germline variant"
    if not (therapies or "").strip():
        return "no therapy"
    return None


def _entries_for(profile: str, r: dict, source: str, evidence_id: str, level: str,
                 approved: bool, citation: str, url: str | None, mapper: DiseaseMapper
                 ) -> list[KbEntry]:
    alternatives = split_profile(profile)
    if not alternatives:
        return []
    code = mapper(r.get("doid", ""), r.get("disease", ""))
    out = []
    for gene, variant in alternatives:
        for alteration in parse_alteration(gene, variant):
            for therapy, drugs in _therapies(r["therapies"],
                                             r.get("therapy_interaction_type", "")):
                out.append(KbEntry(
                    source=source, evidence_id=evidence_id, gene=gene.upper(),
                    alteration=alteration, disease=r.get("disease") or "",
                    disease_oncotree=code, therapy=therapy, drugs=drugs,
                    direction=SIGNIFICANCE[r["significance"]], significance=r["significance"],
                    evidence_level=level, approved=approved, citation=citation, url=url,
                    doid=r.get("doid") or None))
    return out


def curated_entries(oncotree: OncoTree) -> tuple[str, list[KbEntry]]:
    """The curated FDA-label / NCCN entries (``resources/curated_biomarkers.yaml``)."""
    data = _resource("curated_biomarkers.yaml")
    base_url = data.get("drugs_at_fda", "")
    out = []
    for e in data["entries"]:
        gene = e.get("gene")
        alts = parse_alteration(gene or "", e["alteration"])
        if not alts:
            raise ConfigError(f"Curated entry {e['id']}: alteration {e['alteration']!r} is "
                              "not understood; use a CIViC-style name (see "
                              "pipelines/knowledge/alterations.py).")
        for code in [e["oncotree"], *e.get("exclude_oncotree", [])]:
            if oncotree.version != "none" and code not in oncotree:
                raise ConfigError(f"Curated entry {e['id']}: OncoTree code {code!r} is not in "
                                  f"OncoTree {oncotree.version}.")
        url = base_url + e["application"] if e.get("application") and base_url else None
        label = parse_label(e.get("label"), e["id"])
        for alteration in alts:
            out.append(KbEntry(
                source="curated", evidence_id=e["id"],
                gene=None if alteration.kind == "biomarker" else str(gene).upper(),
                alteration=alteration, disease=e["disease"], disease_oncotree=e["oncotree"],
                therapy=e["therapy"], drugs=tuple(d.lower() for d in e["drugs"]),
                direction=e["direction"], significance=e["direction"],
                evidence_level=e["level"], approved=e.get("approval") in ("fda", "nccn"),
                citation=e["citation"], url=url,
                exclude_oncotree=tuple(e.get("exclude_oncotree", [])), label=label))
    return str(data["version"]), out
