"""Clinical notes for one patient, with the exact spans of every PHI item and every finding.

Notes are assembled piece by piece by :class:`NoteBuilder`, which records the character span
of each protected item (``truth/phi.jsonl``) and of each concept mention with its context
(``truth/findings.jsonl``) as it writes, so the truth matches the text by construction.

Each patient gets 2-5 notes: a pathology report (always), an oncology consult (always),
and, when the patient is followed long enough, a staging CT, a brain MRI and a follow-up
progress note. Notes carry what clinicians write: biomarker results (some of them found only
here: PD-L1 TPS, MSI status, ER status and outside-lab NGS results), metastatic sites, ECOG,
smoking history, adverse events, past history, family history and plans, with negated,
possible, historical, hypothetical and family contexts, abbreviations and a few typos.

>>> nb = NoteBuilder(None, {})
>>> nb.frame("Pt {name} has {m}.", name=Phi("Ann Lee", "NAME"),
...          m=Mention("liver mets", "liver metastasis", "site", "affirmed"))
>>> nb.text_value()
'Pt Ann Lee has liver mets.'
>>> nb.phi[0]["start"], nb.findings[0]["end"]
(3, 25)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from pipelines.synth.patient import STREAM_NOTES, Patient, patient_rng
from pipelines.synth.world import World

_SLOT = re.compile(r"\{(\w+)\}")
SITE_WORDS = {"brain": "brain metastasis", "liver": "liver metastasis", "bone": "bone metastasis"}
PRIMARY_SITE = {"NSCLC": "lung", "BRCA": "breast", "COADREAD": "colon", "MEL": "skin"}
CANCER_CONCEPT = {"NSCLC": "non-small cell lung cancer", "BRCA": "breast cancer",
                  "COADREAD": "colorectal cancer", "MEL": "melanoma"}
FAMILY_CANCERS = ("breast cancer", "colorectal cancer", "prostate cancer", "ovarian cancer",
                  "melanoma")
ABSENT = " (absent)"


@dataclass(frozen=True)
class Phi:
    text: str
    type: str


def _tps_context(tps) -> str:
    """A PD-L1 TPS below 1% is a negative result (IASLC/CAP; the lexicon's cut-off), so the
    truth records it as negated, as the reader of a report would."""
    return "affirmed" if tps else "negated"


@dataclass(frozen=True)
class Mention:
    text: str
    concept: str
    category: str
    context: str
    value: str | None = None


class NoteBuilder:
    """Accumulates note text and the spans of PHI and findings inside it."""

    def __init__(self, rng: np.random.Generator | None, typos: dict, typo_rate: float = 0.12):
        self.rng, self.typos, self.typo_rate = rng, typos, typo_rate
        self.parts: list[str] = []
        self.pos = 0
        self.phi: list[dict] = []
        self.findings: list[dict] = []
        self._typo_re = re.compile(r"\b(" + "|".join(map(re.escape, typos)) + r")\b") \
            if typos else None

    def _typo(self, text: str) -> str:
        if self.rng is None or self._typo_re is None:
            return text

        def swap(m: re.Match) -> str:
            return self.typos[m.group(1)] if self.rng.random() < self.typo_rate else m.group(1)

        return self._typo_re.sub(swap, text)

    def add(self, text: str, typos: bool = True) -> None:
        if typos:
            text = self._typo(text)
        self.parts.append(text)
        self.pos += len(text)

    def add_phi(self, item: Phi) -> None:
        self.phi.append({"start": self.pos, "end": self.pos + len(item.text), "type": item.type,
                         "text": item.text})
        self.add(item.text, typos=False)

    def add_mention(self, m: Mention) -> None:
        rec = {"concept": m.concept, "category": m.category, "context": m.context,
               "value": m.value, "start": self.pos, "end": self.pos + len(m.text),
               "text": m.text}
        self.findings.append(rec)
        self.add(m.text, typos=False)

    def frame(self, template: str, **slots) -> None:
        """Write ``template`` with ``{slot}`` values that are plain text, PHI or mentions."""
        last = 0
        for match in _SLOT.finditer(template):
            self.add(template[last:match.start()])
            value = slots[match.group(1)]
            if isinstance(value, Phi):
                self.add_phi(value)
            elif isinstance(value, Mention):
                self.add_mention(value)
            else:
                self.add(str(value), typos=False)
            last = match.end()
        self.add(template[last:])

    def line(self, template: str = "", **slots) -> None:
        self.frame(template + "\n", **slots)

    def text_value(self) -> str:
        return "".join(self.parts)


class Identity:
    """A patient's identifiers and contact details (the PHI that notes embed)."""

    def __init__(self, world: World, patient: Patient, seed: int, rng: np.random.Generator):
        lex = world.notes
        self.first = str(rng.choice(lex["first_names"][patient.sex]))
        self.last = str(rng.choice(lex["last_names"]))
        self.mrn = f"{(patient.index * 7919 + seed * 104729) % 90_000_000 + 10_000_000:08d}"
        city, state, zip_code = lex["cities"][int(rng.integers(len(lex["cities"])))]
        self.street = f"{int(rng.integers(10, 9900))} {rng.choice(lex['streets'])}"
        self.city, self.state, self.zip = city, state, zip_code
        area = str(rng.choice(lex["area_codes"]))
        self.phone = (area, f"555-01{int(rng.integers(0, 100)):02d}")
        self.clinic_phone = (str(rng.choice(lex["area_codes"])),
                             f"555-01{int(rng.integers(0, 100)):02d}")
        self.email = (f"{self.first.lower()}.{self.last.lower().replace(chr(39), '')}"
                      f"{int(rng.integers(1, 99))}@{rng.choice(lex['email_domains'])}")
        self.oncologist = str(rng.choice(lex["clinician_last_names"]))
        self.onc_first = str(rng.choice(lex["first_names"]["F" if rng.random() < 0.5 else "M"]))
        self.pathologist = (f"{rng.choice(lex['first_names']['F'])} "
                            f"{rng.choice(lex['clinician_last_names'])}")
        self.radiologist = (f"{rng.choice(lex['first_names']['M'])} "
                            f"{rng.choice(lex['clinician_last_names'])}")

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


class NoteWriter:
    """Writes one patient's notes; ``notes``, ``phi`` and ``findings`` hold the results."""

    def __init__(self, world: World, patient: Patient, identity: Identity, seed: int):
        self.w, self.p, self.id = world, patient, identity
        self.rng = patient_rng(seed, patient.index, STREAM_NOTES)
        self.lex = world.notes

    # ------------------------------------------------------------------ small helpers
    def _choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def _date(self, d: date) -> Phi:
        fmt = self._choice(self.lex["date_formats"])
        text = d.strftime(fmt)
        if fmt in ("%m/%d/%Y", "%m/%d/%y") and self.rng.random() < 0.5:
            # Clinicians drop leading zeros ("3/4/21").
            m, dd, y = text.split("/")
            text = f"{int(m)}/{int(dd)}/{y}"
        return Phi(text, "DATE")

    def _phone(self, kind: str = "PHONE", own: bool = False) -> Phi:
        """The patient's own number, or a clinic/lab line (with its fax one digit up)."""
        if own:
            area, num = self.id.phone
        else:
            area, num = self.id.clinic_phone
        if kind == "FAX":
            num = num[:-1] + str((int(num[-1]) + 1) % 10)
        style = int(self.rng.integers(3))
        text = (f"({area}) {num}", f"{area}-{num}", f"{area}.{num.replace('-', '.')}")[style]
        return Phi(text, kind)

    def _mention(self, key: str, context: str, value=None) -> Mention:
        """A surface form of ``key`` from the lexicon; "X (absent)" forms are X, negated."""
        form = self._choice(self.lex["mentions"][key])
        concept = key
        if key.endswith(ABSENT):
            concept, context = key[: -len(ABSENT)], "negated"
        if "{v}" in form:
            form = form.replace("{v}", str(value))
        return Mention(form, concept, self.w.concept_category(concept), context,
                       None if value is None else str(value))

    def _dx(self, context: str = "affirmed", text: str | None = None) -> Mention:
        """The patient's own cancer, named as clinicians do."""
        concept = CANCER_CONCEPT[self.p.cancer_type]
        if text is None:
            forms = [f for f in self.lex["mentions"][concept]
                     if self.p.stage == "IV" or "metastatic" not in f]
            text = self._choice(forms)
        return Mention(text, concept, "diagnosis", context)

    def _drug_list(self, b: NoteBuilder, drugs, sep: str = " + ") -> None:
        for i, drug in enumerate(drugs):
            if i:
                b.add(sep)
            b.add_mention(self._drug(drug, "affirmed"))

    def _drug(self, drug: str, context: str) -> Mention:
        return Mention(drug, drug, "therapy", context)

    def _age_text(self, builder: NoteBuilder, suffix: str) -> None:
        # HIPAA Safe Harbor: only ages over 89 are identifiers.
        if self.p.age > 89:
            builder.add_phi(Phi(str(self.p.age), "AGE"))
        else:
            builder.add(str(self.p.age), typos=False)
        builder.add(suffix)

    def _header(self, b: NoteBuilder, title: str, when: date) -> None:
        b.line(title)
        b.line("Date of service: {d}", d=self._date(when))
        style = int(self.rng.integers(3))
        mrn = ("MRN: {mrn}", "MRN# {mrn}", "Med Rec No. {mrn}")[style]
        b.line("Patient: {name}    " + mrn, name=Phi(self.id.name, "NAME"),
               mrn=Phi(self.id.mrn, "MRN"))
        if self.rng.random() < 0.6:
            b.line("DOB: {dob}", dob=self._date(self.p.birth_date))
        b.line()

    def _sign(self, b: NoteBuilder, name: str, when: date) -> None:
        b.line()
        b.line("Electronically signed by {n}, MD on {d}", n=Phi(name, "NAME"),
               d=self._date(when))

    def _driver_concept(self, key: str) -> str:
        return self.w.drivers[key]["concept"]

    # ------------------------------------------------------------------ notes
    def pathology(self, when: date) -> NoteBuilder:
        p, b = self.p, NoteBuilder(self.rng, self.lex["typos"])
        b.line("SURGICAL PATHOLOGY REPORT")
        b.line("Patient: {name}   MRN: {mrn}   DOB: {dob}", name=Phi(self.id.name, "NAME"),
               mrn=Phi(self.id.mrn, "MRN"), dob=self._date(p.birth_date))
        acc = f"S{when.year % 100:02d}-{int(self.rng.integers(1000, 99999)):05d}"
        b.line("Accession #: {acc}    Collected: {c}    Received: {r}", acc=Phi(acc, "ID"),
               c=self._date(when), r=self._date(when + timedelta(days=1)))
        b.line("Submitting physician: Dr. {n}", n=Phi(self.id.oncologist, "NAME"))
        b.add("Clinical history: ")
        self._age_text(b, f" yo {'F' if p.sex == 'F' else 'M'} w/ {PRIMARY_SITE[p.cancer_type]}"
                          " mass, r/o malignancy.\n\n")
        b.line("FINAL DIAGNOSIS:")
        site = {"NSCLC": "Lung, CT-guided core biopsy", "BRCA": "Breast, US-guided core biopsy",
                "COADREAD": "Colon, endoscopic biopsy", "MEL": "Skin, excisional biopsy"}
        b.line(f"{site[p.cancer_type]}:")
        grade = self._choice(["moderately", "poorly", "well"])
        if p.cancer_type == "NSCLC":
            b.line("- {m}, " + p.histology + " type, " + grade + " differentiated.",
                   m=self._dx(text="Non-small cell lung carcinoma"))
        elif p.cancer_type == "COADREAD":
            organ = "rectum" if p.icd10 == "C20" else "colon"
            b.line("- {m}, " + grade + " differentiated.",
                   m=self._dx(text=f"Adenocarcinoma of the {organ}"))
        elif p.cancer_type == "BRCA":
            b.line("- {m}, Nottingham grade " + str(int(self.rng.integers(1, 4))) + ".",
                   m=self._dx(text=p.histology.capitalize()))
        else:
            b.line("- {m}, Breslow depth " + f"{self.rng.uniform(0.8, 6.0):.1f}" + " mm.",
                   m=self._dx(text=p.histology.capitalize()))
        b.line()
        b.line("ANCILLARY STUDIES:")
        if p.cancer_type == "MEL":
            b.line("Tumor cells positive for SOX10 and Melan-A.")
        if p.cancer_type == "NSCLC":
            value = p.pdl1_tps if p.pdl1_tps else self._choice(["0", "<1"])
            b.line("{m} (Dako 22C3 pharmDx).",
                   m=self._mention("PD-L1 TPS", _tps_context(p.pdl1_tps), value))
        if p.cancer_type == "BRCA":
            concept = "ER positive" if p.er_positive else "ER positive" + ABSENT
            pct = int(self.rng.integers(60, 100)) if p.er_positive else 0
            b.line("Estrogen receptor: {m} ({pct}% nuclear staining).",
                   m=self._mention(concept, "affirmed"), pct=pct)
            if p.erbb2_amp:
                b.line("HER2: IHC 3+; {m} by FISH (HER2/CEP17 ratio {r}).",
                       m=self._mention("ERBB2 amplification", "affirmed"),
                       r=f"{self.rng.uniform(2.5, 8):.1f}")
            else:
                b.line("HER2: IHC 1+. No evidence of {m} by FISH.",
                       m=self._mention("ERBB2 amplification", "negated"))
        if p.cancer_type == "COADREAD":
            if p.msi_h:
                b.line("MMR IHC: loss of MLH1 and PMS2 expression; consistent with {m}.",
                       m=self._mention("MSI-H", "affirmed"))
            else:
                b.line("MMR IHC: intact MLH1, MSH2, MSH6, PMS2 ({m}).",
                       m=self._mention("MSI-H" + ABSENT, "negated"))
        b.line()
        b.line("MOLECULAR (in-house NGS, 523-gene panel):")
        if p.outside_lab_driver:
            b.line("Insufficient tumor for in-house sequencing; tissue sent to outside lab.")
        else:
            shown = [d for d in p.vcf_drivers if d != "ERBB2_AMP"]
            for key in shown:
                vaf = int(self.rng.integers(8, 55))
                b.line("- {m} (VAF {v}%)", m=self._mention(self._driver_concept(key), "affirmed"),
                       v=vaf)
            if not shown:
                b.line("- No pathogenic variants in EGFR, KRAS, BRAF, ALK, ROS1 detected.")
            b.line("- {m}", m=self._mention("TMB", "affirmed", f"{p.tmb:.1f}"))
        self._sign(b, self.id.pathologist, when + timedelta(days=3))
        b.line("Pathology dept: ph {ph}  fax {fx}", ph=self._phone(), fx=self._phone("FAX"))
        return b

    def consult(self, when: date) -> NoteBuilder:
        p, b, ident = self.p, NoteBuilder(self.rng, self.lex["typos"]), self.id
        self._header(b, self._choice(["HEMATOLOGY/ONCOLOGY CONSULT NOTE",
                                      "Medical Oncology New Patient Visit"]), when)
        b.add("HPI: Pt is a ")
        self._age_text(b, f"-year-old {'woman' if p.sex == 'F' else 'man'} w/ newly dx "
                          f"stage {p.stage} ")
        b.add_mention(self._dx())
        b.add(", bx on ")
        b.add_phi(self._date(p.diagnosis_date))
        b.add(". ")
        if p.outside_lab_driver:
            lab = self._choice(self.lex["outside_labs"])
            b.frame("{m} detected by outside NGS ({lab}, report dated {d}). ",
                    m=self._mention(self._driver_concept(p.outside_lab_driver), "affirmed"),
                    lab=lab, d=self._date(p.diagnosis_date + timedelta(days=12)))
        elif p.vcf_drivers and self.rng.random() < 0.7:
            key = p.vcf_drivers[0]
            if key != "ERBB2_AMP":
                b.frame("NGS notable for {m}. ",
                        m=self._mention(self._driver_concept(key), "affirmed"))
        if p.cancer_type == "NSCLC" and self.rng.random() < 0.6:
            value = p.pdl1_tps if p.pdl1_tps else "<1"
            b.frame("{m}. ", m=self._mention("PD-L1 TPS", _tps_context(p.pdl1_tps), value))
        if p.cancer_type == "COADREAD" and p.msi_h:
            b.frame("Tumor is {m}. ", m=self._mention("MSI-H", "affirmed"))
        sites = [s for s, v in p.metastases.items() if v]
        if sites and self.rng.random() < 0.8:
            s = self._choice(sites)
            b.frame("Staging imaging w/ {m}. ", m=self._mention(SITE_WORDS[s], "affirmed"))
        b.add("\n\n")

        # Past history: comorbidities plus historical adverse events.
        words = self.w.clinical["comorbidity_words"]
        concepts = self.w.clinical["comorbidity_concepts"]
        b.add("PMH: ")
        if not p.comorbidities:
            b.add("none significant")
        for k, cond in enumerate(p.comorbidities):
            if k:
                b.add(", ")
            # A past-history list states conditions as history (ConText section rule).
            if words[cond] == "hypothyroidism":
                b.add_mention(self._mention("hypothyroidism", "historical"))
            elif concepts.get(cond):
                b.add_mention(Mention(words[cond], concepts[cond], "comorbidity", "historical",
                                      None))
            else:
                b.add(words[cond], typos=False)
        if "ild" in p.flags or self.rng.random() < 0.04:
            b.add("; ")
            self._frame_from(b, "ae_historical", "pneumonitis", "historical")
        b.add("\n")
        if self.rng.random() < 0.3:
            rel = self._choice(["Mother", "Father", "Sister", "Brother", "Maternal aunt"])
            concept = self._choice(FAMILY_CANCERS)
            b.add("FHx: ")
            self._frame_from(b, "family", concept, "family", rel=rel)
            b.add(".\n")
        else:
            b.add("FHx: noncontributory.\n")
        b.add("SH: ")
        smoke = {"never": "never smoker", "former": "former smoker",
                 "current": "current smoker"}[p.smoking]
        b.frame("{m}", m=self._mention(smoke, "affirmed"))
        if p.pack_years and self.rng.random() < 0.7:
            b.frame(" ({m})", m=self._mention("pack-years", "affirmed", p.pack_years))
        b.frame(". Lives w/ family at {addr} {zip}.\n",
                addr=Phi(f"{ident.street}, {ident.city}, {ident.state}", "ADDRESS"),
                zip=Phi(ident.zip, "ZIP"))
        b.frame("Contact: {ph}", ph=self._phone(own=True))
        if self.rng.random() < 0.4:
            b.frame(", {em}", em=Phi(ident.email, "EMAIL"))
        b.add("\n\n")
        if p.ecog_recorded:
            b.frame("EXAM: {m}. Alert, NAD. Lungs CTA b/l.\n\n",
                    m=self._mention("ECOG", "affirmed", p.ecog))
        else:  # a scenario where this clinic does not record performance status
            b.add("EXAM: Alert, NAD. Lungs CTA b/l.\n\n")

        b.line("ASSESSMENT/PLAN:")
        regimen = self.w.catalog.get(p.first_line)
        b.frame("Stage " + p.stage + " {m}. Discussed treatment options w/ pt and family. "
                "Plan: ", m=self._dx())
        self._drug_list(b, regimen.drugs)
        b.frame(", C1D1 {d}.\n", d=self._date(p.index_date))
        self._hypothetical(b)
        if "brain" not in sites and p.stage == "IV" and self.rng.random() < 0.5:
            b.add("- MRI brain: ")
            self._frame_from(b, "site_negated", "brain metastasis", "negated")
            b.add(".\n")
        b.add("- RTC 3 wks. Pt knows to call ")
        b.add_phi(self._phone())
        b.add(" w/ questions.\n")
        if self.rng.random() < 0.05:
            b.frame("- Enrolled in pt portal: {u}\n",
                    u=Phi(f"{self.lex['portal_url']}{int(self.rng.integers(10**6, 10**7))}",
                          "URL"))
        b.line()
        b.line("{n}, MD", n=Phi(f"{ident.onc_first} {ident.oncologist}", "NAME"))
        return b

    def _hypothetical(self, b: NoteBuilder) -> None:
        """A plan that depends on a result nobody has yet (ConText's hypothetical)."""
        p = self.p
        given = set(self.w.catalog.get(p.first_line).drugs)
        if p.cancer_type == "NSCLC" and not p.features["egfr_sensitizing"]:
            args = ("therapy_hypothetical", "osimertinib", {"drug": True,
                                                             "cond": "EGFR positive on rebiopsy"})
        elif p.cancer_type == "NSCLC":
            args = ("biomarker_hypothetical", "KRAS G12C", {"drug_name": "sotorasib"})
        elif p.cancer_type == "MEL" and not p.features["braf_v600e"]:
            args = ("biomarker_hypothetical", "BRAF V600E", {"drug_name": "dabrafenib"})
        elif p.cancer_type == "COADREAD" and not p.msi_h:
            args = ("therapy_hypothetical", "pembrolizumab", {"drug": True,
                                                               "cond": "MSI-H on repeat testing"})
        else:
            return
        if args[1] in given or args[2].get("drug_name") in given:
            return
        b.add("- ")
        self._frame_from(b, args[0], args[1], "hypothetical", **args[2])
        b.add(".\n")

    def _frame_from(self, b: NoteBuilder, frame_key: str, concept: str, context: str,
                    drug: bool = False, **slots) -> None:
        template = self._choice(self.lex["frames"][frame_key])
        mention = self._drug(concept, context) if drug else self._mention(concept, context)
        fill = {"m": mention}
        if "drug_name" in slots:
            fill["drug"] = slots.pop("drug_name")
        fill.update({k: v for k, v in slots.items()})
        fill.setdefault("drug", "therapy")
        fill.setdefault("g", str(int(self.rng.integers(2, 4))))
        if template.endswith("."):
            template = template[:-1]
        b.frame(template, **{k: v for k, v in fill.items() if "{" + k + "}" in template})

    def imaging(self, when: date) -> NoteBuilder:
        p, b = self.p, NoteBuilder(self.rng, self.lex["typos"])
        self._header(b, "CT CHEST/ABDOMEN/PELVIS W/ CONTRAST", when)
        acc = f"RAD{int(self.rng.integers(10**6, 10**7))}"
        b.line("Accession: {a}    Ordering: Dr. {n}", a=Phi(acc, "ID"),
               n=Phi(self.id.oncologist, "NAME"))
        b.line("CLINICAL HISTORY: {m}, staging.", m=self._dx())
        b.line("COMPARISON: None.")
        b.line("FINDINGS: Primary lesion as described. Scattered subcentimeter nodes.")
        b.line()
        b.line("IMPRESSION:")
        n = 1
        for site in ("liver", "bone"):
            present = p.metastases[site]
            u = self.rng.random()
            if present:
                key, ctx = ("site_affirmed", "affirmed") if u < 0.88 else ("site_possible",
                                                                          "possible")
            elif u < 0.5:
                key, ctx = "site_negated", "negated"
            elif u < 0.55:
                key, ctx = "site_possible", "possible"
            else:
                continue
            b.add(f"{n}. ")
            self._frame_from(b, key, SITE_WORDS[site], ctx)
            b.add(".\n")
            n += 1
        if n == 1:
            b.add("1. No evidence of metastatic disease in the chest, abdomen or pelvis.\n")
        self._sign(b, self.id.radiologist, when)
        return b

    def brain_mri(self, when: date) -> NoteBuilder:
        p, b = self.p, NoteBuilder(self.rng, self.lex["typos"])
        self._header(b, "MRI BRAIN W/WO CONTRAST", when)
        b.line("INDICATION: {m}, staging.", m=self._dx())
        b.line()
        b.line("IMPRESSION:")
        b.add("1. ")
        if p.metastases["brain"]:
            self._frame_from(b, "site_affirmed", "brain metastasis", "affirmed")
            b.add(", largest 9 mm in the L frontal lobe. Rad onc referral.\n")
        else:
            self._frame_from(b, "site_negated", "brain metastasis", "negated")
            b.add(".\n")
        self._sign(b, self.id.radiologist, when)
        return b

    def progress(self, when: date, cycle: int) -> NoteBuilder:
        p, b = self.p, NoteBuilder(self.rng, self.lex["typos"])
        self._header(b, "ONCOLOGY PROGRESS NOTE", when)
        regimen = self.w.catalog.get(p.first_line)
        # Name the drug a clinician would (not the leucovorin of FOLFOX).
        drug = next(d for d in reversed(regimen.drugs)
                    if d not in ("leucovorin", "fluorouracil", "cyclophosphamide"))
        b.add(f"Interval hx: Pt returns for C{cycle} of ")
        b.add_mention(self._drug(drug, "affirmed"))
        b.add(". ")
        if p.adverse_events:
            b.add(" ")
            self._frame_from(b, "ae_affirmed", p.adverse_events[0], "affirmed",
                             drug_name=drug)
            b.add(". ")
        elif regimen.drug_class == "immunotherapy":
            self._frame_from(b, "ae_negated", "pneumonitis", "negated")
            b.add(". ")
        else:
            b.add("Tolerated treatment well. ")
        b.add("\n\n")
        ecog = min(4, p.ecog + int(self.rng.random() < 0.2))
        if p.ecog_recorded:
            b.frame("EXAM: {m}. No new focal deficits.\n\n",
                    m=self._mention("ECOG", "affirmed", ecog))
        else:
            b.add("EXAM: No new focal deficits.\n\n")
        b.line("ASSESSMENT/PLAN:")
        b.frame("Pt w/ {m} on ", m=self._dx())
        self._drug_list(b, regimen.drugs, "/")
        b.add(". Restaging CT ")
        b.add_phi(self._date(when + timedelta(days=int(self.rng.integers(20, 40)))))
        b.add(". Continue current therapy. f/u 3 wks.\n")
        self._sign(b, f"{self.id.onc_first} {self.id.oncologist}", when)
        return b

    # ------------------------------------------------------------------ all notes
    def write(self) -> list[tuple[str, date, NoteBuilder]]:
        p = self.p
        last = p.last_followup_date
        notes = [("pathology", p.diagnosis_date + timedelta(days=int(self.rng.integers(1, 6))),
                  "pathology"),
                 ("progress", p.index_date - timedelta(days=int(self.rng.integers(5, 12))),
                  "consult")]
        extra = []
        if p.stage in ("III", "IV"):
            extra.append(("imaging", p.index_date - timedelta(days=int(self.rng.integers(12, 20))),
                          "imaging"))
        if p.stage == "IV" and p.cancer_type in ("NSCLC", "MEL", "BRCA") \
                and self.rng.random() < 0.6:
            extra.append(("imaging", p.index_date - timedelta(days=int(self.rng.integers(3, 11))),
                          "brain_mri"))
        follow = p.index_date + timedelta(days=int(self.rng.integers(42, 110)))
        if follow < last:
            extra.append(("progress", follow, "progress"))
        chosen = notes + extra[:int(self.rng.integers(0, len(extra) + 1))]
        out = []
        for note_type, when, kind in chosen:
            if kind == "pathology":
                builder = self.pathology(when)
            elif kind == "consult":
                builder = self.consult(when)
            elif kind == "imaging":
                builder = self.imaging(when)
            elif kind == "brain_mri":
                builder = self.brain_mri(when)
            else:
                builder = self.progress(when, int(self.rng.integers(2, 6)))
            out.append((note_type, when, builder))
        out.sort(key=lambda t: t[1])
        return out
