"""Jinja templates and stylesheet of the tumor-board report (package data)."""

__all__: list[str] = []
