"""Tumor-board reports: one self-contained HTML page (+ PDF) per patient and an index per board."""
