"""How many migrations an upgrade applies, read from the new version's alembic scripts."""

from types import SimpleNamespace

from setpoint.operations.upgrade import _migrations_between

# a <- b <- c, a <- d, (c, d) <- merge <- f: Superset 5.0's history has merges like this one.
SCRIPTS = {
    "a": "down_revision = None",
    "b": 'down_revision = "a"',
    "c": "down_revision = 'b'",
    "d": 'down_revision = "a"',
    "merge": 'down_revision = ("c", "d")',
    "f": 'down_revision = "merge"',
}


def venv_with(tmp_path):
    versions = tmp_path / "lib" / "python3.11" / "site-packages" / "superset" / "migrations" / "versions"
    versions.mkdir(parents=True)
    for revision, down in SCRIPTS.items():
        (versions / f"{revision}_x.py").write_text(f'"""{revision}"""\n\nrevision = "{revision}"\n{down}\n')
    return SimpleNamespace(venv=tmp_path)


def test_revisions_past_a_merge_are_all_counted(tmp_path):
    ctx = venv_with(tmp_path)
    assert _migrations_between(ctx, "b", "f") == 4  # c, d, merge, f
    assert _migrations_between(ctx, "a", "c") == 2
    assert _migrations_between(ctx, "f", "f") == 0


def test_an_unknown_revision_counts_nothing(tmp_path):
    assert _migrations_between(venv_with(tmp_path), "zz", "f") == 0
