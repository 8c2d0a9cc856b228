"""Commands named in text exist: every `setpoint ...` in the README, the catalog's remedies and the
hints of the source is a real command, with options it really has."""

import re
from pathlib import Path

import pytest
import typer

from setpoint.checklist.catalog import CHECKS
from setpoint.cli import app

ROOT = Path(__file__).resolve().parents[2]
COMMAND = re.compile(r"\bsetpoint((?: [a-z][a-z-]*| NAME| [A-Z_]+| \[[^\]]*\]| --?[a-z][a-z-]*(?: [A-Z_|.]+)?)+)")


def mentions() -> list[str]:
    texts = [(ROOT / "README.md").read_text()]
    texts += [c.remedy_managed for c in CHECKS]
    texts += [p.read_text() for p in (ROOT / "src" / "setpoint").rglob("*.py")]
    texts += [p.read_text() for p in (ROOT / "src" / "setpoint" / "render" / "templates").glob("*.j2")]
    found = set()
    for text in texts:
        for match in COMMAND.finditer(text):
            found.add("setpoint" + match.group(1))
    return sorted(found)


def resolve(words: list[str]):
    """The (click) command the words name, and the words left after it."""
    command = typer.main.get_command(app)  # typer may bring its own copy of click: duck-typed below
    while words and hasattr(command, "commands") and words[0] in command.commands:
        command = command.commands[words.pop(0)]
    return command, words


@pytest.mark.parametrize("mention", mentions())
def test_named_command_exists_with_its_options(mention):
    words = mention.split()[1:]
    command, rest = resolve(list(words))
    if hasattr(command, "commands") and not command.name:
        # "setpoint" followed by prose ("setpoint as root") is no command line; a word followed by an
        # instance placeholder or an option ("setpoint runbook NAME") is one, and it does not exist.
        meant = len(rest) > 1 and rest[0].islower() and (rest[1] in ("NAME", "demo") or rest[1].startswith("-"))
        assert not meant, f"'{mention}' names no setpoint command"
        return
    known = {opt for param in command.params for opt in getattr(param, "opts", [])} | {"--help"}
    for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", " ".join(rest)):
        assert option in known, f"'{mention}': {command.name} has no option {option}"
