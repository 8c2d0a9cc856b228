"""The incident runbook: rendered from the spec (golden file), its commands found in its code
blocks, each naming a real command with real options, and a stale copy told apart."""

import shlex

from setpoint.operations import runbook
from tests.unit.test_cli_docs import resolve
from tests.unit.test_render import GOLDEN, context


def rendered(**spec_fields) -> str:
    return runbook.render_runbook(context(**spec_fields))


def test_matches_golden_file():
    text = rendered(runbook={"contacts": ["Platform on-call: +33 1 23 45 67 89", "bi-owners@example.com"]})
    golden = GOLDEN / "runbook.md"
    if __import__("os").environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), "runbook.md changed; rerun with UPDATE_GOLDEN=1 if intended"


def test_commands_are_the_code_blocks_lines_and_real_commands():
    commands = runbook.commands(rendered())
    assert commands[0] == "setpoint status demo"
    assert "setpoint restart demo postgres" in commands and "setpoint clear-cache demo" in commands
    assert not any(c.startswith("#") or "`" in c for c in commands)
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "setpoint" and words[2].startswith("demo"), command
        found, rest = resolve(words[1:])
        assert found.name != "setpoint", command
        options = {opt for param in found.params for opt in getattr(param, "opts", [])}
        assert {w for w in rest if w.startswith("--")} <= options, command


def test_contacts_are_listed_or_asked_for():
    assert "1. Platform on-call" in rendered(runbook={"contacts": ["Platform on-call"]})
    assert "runbook.contacts" in rendered()


def test_a_copy_of_another_version_or_layout_is_stale():
    ctx = context()
    text = runbook.render_runbook(ctx)
    assert runbook.gaps(ctx, text) == []
    assert runbook.gaps(ctx, text.replace("Superset 6.1.0", "Superset 6.0.0")) == ["Superset 6.1.0"]
    assert runbook.gaps(ctx, text.replace("`demo-redis`", "`demo-cache`")) == ["the redis component"]
    assert "how to clear the caches" in runbook.gaps(ctx, text.replace("clear-cache", "flush"))


def test_commands_of_markdown_without_blocks():
    assert runbook.commands("# Title\n\nno code here\n") == []
    assert runbook.commands("```sh\n# a comment\n\nsetpoint status x\n```\n```text\nnot run\n```\n") == ["setpoint status x"]
