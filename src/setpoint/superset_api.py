"""A small client of Superset's REST API: login, CSRF, and the calls Setpoint makes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

from setpoint.errors import SetpointError


@dataclass
class SupersetClient:
    """Talks to one Superset through an httpx client whose base URL is the instance's."""

    http: httpx.Client
    token: str | None = None
    csrf: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def login(self, username: str, password: str) -> httpx.Response:
        """Log in with a database account; keep the bearer token on success."""
        response = self.http.post(
            "/api/v1/security/login",
            json={"username": username, "password": password, "provider": "db", "refresh": True},
        )
        if response.status_code == 200:
            self.token = response.json()["access_token"]
            self.headers = {"Authorization": f"Bearer {self.token}"}
        return response

    def ensure_csrf(self) -> None:
        """State-changing calls need a CSRF token and Referer even with a bearer token."""
        if self.csrf is None:
            response = self.get("/api/v1/security/csrf_token/")
            self.csrf = response.json()["result"]
            self.headers.update({"X-CSRFToken": self.csrf, "Referer": str(self.http.base_url)})

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self._checked(self.http.get(path, headers=self.headers, **kwargs))

    def post(self, path: str, **kwargs) -> httpx.Response:
        self.ensure_csrf()
        return self._checked(self.http.post(path, headers=self.headers, **kwargs))

    def delete(self, path: str, **kwargs) -> httpx.Response:
        self.ensure_csrf()
        return self._checked(self.http.delete(path, headers=self.headers, **kwargs))

    def import_dashboards(self, bundle: bytes, passwords: dict[str, str], overwrite: bool = True) -> None:
        """Load a dashboard export bundle (ZIP) through Superset's own importer."""
        self.post(
            "/api/v1/dashboard/import/",
            files={"formData": ("bundle.zip", bundle, "application/zip")},
            data={"passwords": json.dumps(passwords), "overwrite": "true" if overwrite else "false"},
            timeout=300,
        )

    def find(self, resource: str, column: str, value: str) -> list[dict]:
        """Objects of a resource (dashboard, chart, dataset, database) whose column equals value."""
        query = {"filters": [{"col": column, "opr": "eq", "value": value}], "page_size": 100}
        return self.get(f"/api/v1/{resource}/", params={"q": json.dumps(query)}).json()["result"]

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise SetpointError(
                f"Superset answered {response.status_code} to {response.request.method} "
                f"{response.request.url.path}: {response.text[:300]}",
                "see: setpoint logs NAME web",
            )
        return response
