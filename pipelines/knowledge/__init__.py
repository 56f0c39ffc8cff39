"""Actionability knowledge: CIViC + curated FDA/NCCN biomarker-therapy pairs, OncoTree.

``load_knowledge_base(knowledge_dir(settings))`` gives a versioned :class:`KnowledgeBase`;
:func:`parse_alteration` turns knowledge-base alteration names into matchable specs.
"""

from pipelines.knowledge.alterations import Alteration, parse_alteration
from pipelines.knowledge.kb import KbEntry, KnowledgeBase, knowledge_dir, load_knowledge_base
from pipelines.knowledge.oncotree import OncoTree

__all__ = ["Alteration", "KbEntry", "KnowledgeBase", "OncoTree", "knowledge_dir",
           "load_knowledge_base", "parse_alteration"]
