"""Every `oncorank ...` command in the README's code blocks parses as written: the command and
sub-command exist, every option is known and every argument is accepted (click's own parser,
the one `oncorank` runs; nothing is executed). The README's "--only score report" once failed
with "Got unexpected extra argument(s)"."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.main import get_command

from pipelines.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_commands() -> list[str]:
    """``oncorank`` command lines of the fenced code blocks (continuation lines joined)."""
    out, fenced, pending = [], False, ""
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced, pending = not fenced, ""
            continue
        if not fenced:
            continue
        text = pending + ("\n" if pending else "") + line
        if not pending and not re.match(r"\s*(?:\S*/)?oncorank\s", line):
            continue
        try:
            shlex.split(text, comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            pending = text
            continue
        pending = ""
        out.append(text.strip())
    return out


def parse(args: list[str]):
    """Parse ``args`` down the command tree like ``oncorank`` does, without invoking: the
    sub-command names are looked up, the leaf command parses its options and arguments."""
    command = get_command(app)
    ctx = command.context_class(command, info_name="oncorank")
    rest = list(args)
    while hasattr(command, "get_command"):  # a group: go down to the named sub-command
        name, rest = rest[0], rest[1:]
        command = command.get_command(ctx, name)
        if command is None:
            raise LookupError(f"oncorank has no command {name!r}")
        ctx = command.context_class(command, info_name=name, parent=ctx)
    return command.make_context(ctx.info_name, rest, parent=ctx.parent)


COMMANDS = readme_commands()


def test_the_readme_has_commands_to_check():
    assert len(COMMANDS) >= 8 and any("--only score report" in c for c in COMMANDS)


def test_a_wrong_option_does_not_parse():
    with pytest.raises(Exception, match="No such option"):
        parse(["run", "--config", "x.toml", "--bogus"])


@pytest.mark.parametrize("line", COMMANDS)
def test_every_readme_command_parses(line):
    words = shlex.split(line, comments=True)
    args = words[words.index(next(w for w in words if w.endswith("oncorank"))) + 1:]
    shell = [i for i, w in enumerate(args) if w in (">", ">>", "|", "&&", "2>")]
    args = args[:shell[0]] if shell else args  # the shell's redirections are not oncorank's
    ctx = parse(args)
    path = ctx.command_path.split()[1:]  # "oncorank notes deidentify" -> notes deidentify
    assert args[:len(path)] == path and path[-1] == ctx.command.name
