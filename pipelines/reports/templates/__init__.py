"""Jinja templates and stylesheet of the tumor-board report (package data)."""
