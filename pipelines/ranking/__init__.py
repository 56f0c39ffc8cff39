"""Per-patient treatment rankings (``score`` stage) and population drift."""
