"""Reading a spec from YAML, with every problem reported at once by its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from setpoint.errors import InputError
from setpoint.spec.model import InstanceSpec


def load_spec(name: str, path: Path | None = None) -> InstanceSpec:
    """The spec of instance `name`: production defaults, overlaid by the YAML file at `path`."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml_mapping(path)
        if data.get("name", name) != name:
            raise InputError(
                f"{path}: name is '{data['name']}' but the command names instance '{name}'",
                "make them the same, or drop name from the spec file",
            )
    return parse_spec({**data, "name": name}, source=str(path) if path else "spec")


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping, or an InputError that says what is wrong with it."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read spec file {path}: {exc.strerror}", "check the path") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}", "fix the YAML syntax") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a YAML mapping (got {type(data).__name__})", "see: setpoint spec --help")
    return data


def parse_spec(data: dict[str, Any], source: str = "spec") -> InstanceSpec:
    """Validate a mapping into an InstanceSpec, listing every problem with its field path."""
    try:
        return InstanceSpec.model_validate(data)
    except ValidationError as exc:
        problems = [describe_problem(err) for err in exc.errors()]
        raise InputError(
            f"{source} is invalid: " + "; ".join(problems),
            "fix the fields named above (setpoint spec NAME prints every field with its default)",
        ) from None


# What a patterned field may hold, in words: a regular expression helps nobody fix a value.
ALLOWED_FORMS = {
    "name": "must be 1 to 32 lowercase letters, digits and dashes, starting with a letter and not ending with a dash",
    "bucket": "must be an S3 bucket name: 3 to 63 lowercase letters, digits, dots and dashes",
    "path": "must be an absolute path of letters, digits, dots, dashes, underscores and slashes",
    "username": "must be 3 to 64 letters, digits, dots, dashes, underscores or @",
    "email": "must be an e-mail address",
}


def describe_problem(err: dict[str, Any]) -> str:
    """One validation error as `path: what is allowed (got value)`."""
    path = ".".join(str(p) for p in err["loc"]) or "spec"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "string_pattern_mismatch":
        message = ALLOWED_FORMS.get(str(err["loc"][-1]), "has a form that is not allowed")
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown field"
    if err["type"] == "missing":
        return f"{path}: required"
    return f"{path}: {message} (got {err.get('input')!r})"
