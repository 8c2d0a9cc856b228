"""The identity guard's password policy (its Flask hooks are tried against a real instance in
tests/integration/test_logins.py)."""

import importlib.util
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src/setpoint/runtime/local/superset_side/identity_guard.py"
_spec = importlib.util.spec_from_file_location("identity_guard", SOURCE)
identity_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(identity_guard)


@pytest.mark.parametrize("password", ["password", "Password123!", "!!Welcome1!!", "Superset2026", "qwerty_qwerty",
                                      "aaaaaaaaaaaaaaaa", "1212121212121"])
def test_common_passwords_and_their_decorated_forms_are_common(password):
    assert identity_guard.is_common(password)


@pytest.mark.parametrize("password", ["violet tram mountain", "xK9#mQ2$vL7p", "pRz4wLq8sN2vT6yB9cD3fG7h"])
def test_uncommon_passwords_pass(password):
    assert not identity_guard.is_common(password)
