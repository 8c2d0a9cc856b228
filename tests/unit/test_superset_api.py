"""The API client's reading of its own access token."""

import base64
import json

import httpx
import pytest

from setpoint.errors import SetpointError
from setpoint.superset_api import SupersetClient


def segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_the_user_id_comes_from_the_tokens_identity_claim():
    """Flask-AppBuilder signs str(user.id) as `sub`; padding is stripped, as in a real JWT."""
    client = SupersetClient(httpx.Client(base_url="https://bi.example.com"))
    with pytest.raises(SetpointError):
        client.user_id()
    for user in (7, 1234):
        client.token = ".".join([segment({"alg": "HS256", "typ": "JWT"}), segment({"fresh": True, "sub": str(user)}), "c2ln"])
        assert client.user_id() == user
