"""Errors that speak to the user.

Every failure a user can cause or fix (a missing file, a bad config, a table that fails its
checks) is raised as an :class:`OncorankError`. The command line prints its message as one
sentence and exits non-zero; the stack trace is shown only with ``--debug``.
"""

from __future__ import annotations


class OncorankError(Exception):
    """A problem the user can act on. ``str(err)`` is the whole message."""

    exit_code = 2


class ConfigError(OncorankError):
    """The configuration file, an environment variable or a flag is invalid."""


class InputNotFoundError(OncorankError):
    """An input path given by the user or the config does not exist."""


class EnvironmentProblem(OncorankError):
    """The machine lacks something oncorank needs (Java, a JVM jar, a package)."""


class ReconciliationError(OncorankError):
    """A job's row counts do not reconcile: rows in != rows written + rows quarantined."""


class DataQualityError(OncorankError):
    """A table-level data-quality check failed; nothing was committed."""


class SchemaMismatchError(OncorankError):
    """An input table or file does not have the columns a step expects."""
