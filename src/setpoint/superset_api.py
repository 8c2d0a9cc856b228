"""A small client of Superset's REST API: login, CSRF, and the calls Setpoint makes."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field

import httpx

from setpoint.errors import SetpointError

TOKEN_MARGIN_S = 60  # an access token this close to its expiry is renewed before a request


@dataclass
class SupersetClient:
    """Talks to one Superset through an httpx client whose base URL is the instance's."""

    http: httpx.Client
    token: str | None = None
    csrf: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    credentials: tuple[str, str] | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    renew_after: float = field(default=0.0, repr=False)

    def login(self, username: str, password: str) -> httpx.Response:
        """Log in with a database account; keep the bearer and refresh tokens on success."""
        response = self.http.post(
            "/api/v1/security/login",
            json={"username": username, "password": password, "provider": "db", "refresh": True},
        )
        if response.status_code == 200:
            self._use(response.json()["access_token"])
            self.refresh_token = response.json().get("refresh_token")
            self.credentials = (username, password)
            # The login's answer is anonymous to Superset: it gave the session an async-queries
            # cookie without a user, which Superset refuses (401) until a signed-in answer replaces it.
            answer = self.http.get("/api/v1/security/csrf_token/", headers=self.headers)
            if answer.status_code == 200:
                self._use_csrf(answer)
        return response

    def _use(self, token: str) -> None:
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}
        self.csrf = None

    def _claims(self) -> dict:
        if self.token is None:
            raise SetpointError("not logged in to Superset", "log in first")
        payload = self.token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    def user_id(self) -> int:
        """The logged-in user's id, from the access token (Flask-AppBuilder's identity claim).
        `/api/v1/me/` would say it too, but before Superset 6.1 it ignores a bearer token."""
        return int(self._claims()["sub"])

    def keep_valid_for(self, seconds: float) -> None:
        """Renew the access token now (with the refresh token, which costs no login) unless it
        stays valid for `seconds`. A request with an expired token is anonymous to Superset, and
        an anonymous answer gives the session a new async-queries channel: the results of jobs
        started on the old one never arrive. So a long flow renews before it starts, not when a
        request fails halfway."""
        if (self.token is None or self._claims().get("exp", float("inf")) - time.time() > seconds
                or time.monotonic() < self.renew_after):
            return
        # One attempt a minute at most: renewals count against the login rate limit.
        self.renew_after = time.monotonic() + 60
        if self.refresh_token is not None:
            response = self.http.post("/api/v1/security/refresh",
                                      headers={"Authorization": f"Bearer {self.refresh_token}"})
            if response.status_code == 200:
                self._use(response.json()["access_token"])
                return
        if self.credentials:
            self.login(*self.credentials)

    def ensure_csrf(self) -> None:
        """State-changing calls need a CSRF token and Referer even with a bearer token."""
        if self.csrf is None:
            self._use_csrf(self.get("/api/v1/security/csrf_token/"))

    def _use_csrf(self, answer: httpx.Response) -> None:
        self.csrf = answer.json()["result"]
        self.headers.update({"X-CSRFToken": self.csrf, "Referer": str(self.http.base_url)})

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
        """A call with the session's token (and, when it changes state, its CSRF token); whatever
        Superset answers is returned."""
        self.keep_valid_for(TOKEN_MARGIN_S)
        for attempt in (1, 2):
            if method != "GET":
                self.ensure_csrf()
            response = self.http.request(method, path, headers={**self.headers, **(headers or {})}, **kwargs)
            if attempt == 2:
                return response
            # Access tokens live 15 minutes (401 when expired), and a rotated SECRET_KEY voids them
            # (422 from Flask-JWT-Extended): a long export or drill outlives one.
            if response.status_code in (401, 422) and self.credentials and (
                    "expired" in response.text or "Signature verification failed" in response.text
                    or "revoked" in response.text):
                self.login(*self.credentials)
            # The CSRF token lives in the server-side session, which a rewind of the instance ends.
            elif response.status_code == 400 and "CSRF" in response.text and self.csrf is not None:
                self.csrf = None
            else:
                return response
        return response

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs) -> httpx.Response:
        """`call`, failing with Superset's answer when it is an error."""
        return self._checked(self.call(method, path, headers, **kwargs))

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def import_dashboards(self, bundle: bytes, passwords: dict[str, str], overwrite: bool = True) -> None:
        """Load a dashboard export bundle (ZIP) through Superset's own importer."""
        self.post(
            "/api/v1/dashboard/import/",
            files={"formData": ("bundle.zip", bundle, "application/zip")},
            data={"passwords": json.dumps(passwords), "overwrite": "true" if overwrite else "false"},
            timeout=300,
        )

    def chart_data(self, query_context: str | dict, timeout: float = 60) -> list[dict]:
        """Run a chart's query; with asynchronous queries on, wait for the Celery worker's result."""
        body = query_context if isinstance(query_context, str) else json.dumps(query_context)
        self.keep_valid_for(timeout + TOKEN_MARGIN_S)
        response = self.post("/api/v1/chart/data", content=body, headers={"Content-Type": "application/json"})
        if response.status_code != 202:
            return response.json()["result"]
        job = response.json()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.get("/api/v1/async_event/").json()["result"]
            for event in events:
                if event["job_id"] != job["job_id"]:
                    continue
                if event["status"] == "done":
                    return self.get(event["result_url"]).json()["result"]
                if event["status"] == "error":
                    raise SetpointError(f"the chart query failed: {event['errors']}", "see: setpoint logs NAME worker")
            time.sleep(0.5)
        raise SetpointError(f"no result for async query {job['job_id']} within {timeout:.0f} s",
                            "is the Celery worker running? see: setpoint status NAME")

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
