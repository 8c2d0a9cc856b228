"""Screenshots: reports' images and thumbnails, which an instance's Celery worker renders in
Debian's headless Chromium through Selenium and the system ChromeDriver (never a downloaded
browser), and the self-test `up` runs to prove it renders the sample dashboard."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

from PIL import Image

from setpoint.spec.model import InstanceSpec, version_key
from setpoint.superset_api import SupersetClient

# Debian's chromium-driver; it starts Debian's chromium (/usr/bin/chromium) by itself.
CHROMEDRIVER = "/usr/bin/chromedriver"
# The browser's sandbox needs user namespaces or a setuid helper, which a host may not give: the
# browser runs as the instance's own account instead, within its cgroup, and loads only the
# instance's own pages, whose content security policy keeps them from fetching anywhere else.
# No background traffic (updates, sync, field trials): the host's network may be closed.
BROWSER_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-quic", "--mute-audio",
)
# How long the browser may take to show the dashboard's frame (Superset's SCREENSHOT_LOCATE_WAIT;
# its default of 10 s is short for a busy host, or a new account's first start of Chromium).
LOCATE_WAIT_S = 30
# Superset's waits around a render (the one above, _SELENIUM_HEADSTART and
# _SELENIUM_ANIMATION_WAIT at their defaults), and room for the browser's start and the upload.
FIXED_WAITS_S = LOCATE_WAIT_S + 3 + 5 + 30
# An image is blank when fewer colours than this make it up (a white page with a spinner has a few
# dozen; the sample dashboard's thumbnail has thousands).
MIN_COLOURS = 200


def task_time_limits(spec: InstanceSpec) -> tuple[int, int]:
    """(soft, hard) Celery time limits of a thumbnail task: past them a hung page is given up and
    the worker process is free again."""
    soft = spec.screenshots.load_timeout_s + FIXED_WAITS_S
    return soft, soft + 30


def colours(png: bytes) -> int:
    """How many distinct colours make up a PNG image."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return len(image.getcolors(maxcolors=image.width * image.height))


class NotRendered(Exception):
    """The worker rendered no image, or a blank one: the sentence says which."""


@dataclass(frozen=True)
class Rendered:
    size: tuple[int, int]
    colours: int
    seconds: float
    png: bytes = field(repr=False)


def thumbnail_url(api: SupersetClient, dashboard_id: int) -> str:
    """The address of dashboard `dashboard_id`'s thumbnail for the API's user, from the dashboard
    list (its digest is the user's own)."""
    listed = api.get("/api/v1/dashboard/", params={
        "q": f"(columns:!(id,thumbnail_url),filters:!((col:id,opr:eq,value:{dashboard_id})))"}).json()["result"]
    if not listed or not listed[0].get("thumbnail_url"):
        raise NotRendered("the dashboard list gives no thumbnail (the THUMBNAILS feature is off)")
    return listed[0]["thumbnail_url"]


# What Superset answers for a thumbnail not rendered yet: 202 (queued) and 404 (being rendered,
# or failed: it does not tell them apart). Before 6.0 it also answers 500 while the image is
# being rendered: it sends the image of a cache entry that has none yet.
RENDERING = (202, 404)
RENDERING_BEFORE_6 = (*RENDERING, 500)


def rendering_answers(version: str) -> tuple[int, ...]:
    return RENDERING if version_key(version) >= (6, 0, 0) else RENDERING_BEFORE_6


def thumbnail(api: SupersetClient, dashboard_id: int, timeout: float, rendering: tuple[int, ...] = RENDERING) -> bytes:
    """Dashboard `dashboard_id`'s thumbnail as the API's user sees it, through Superset's own flow
    (the web asks, the worker renders in Chromium, Redis keeps the image): a PNG image."""
    started = time.monotonic()
    url = thumbnail_url(api, dashboard_id)
    while True:
        response = api.call("GET", url, follow_redirects=True)
        if response.status_code == 200 and response.headers.get("content-type", "").startswith("image/"):
            return response.content
        if response.status_code not in rendering:
            raise NotRendered(f"its thumbnail answered {response.status_code}")
        if time.monotonic() - started > timeout:
            raise NotRendered(f"the worker rendered no image within {timeout:.0f} s")
        time.sleep(3)  # each ask while the task waits in the queue sends another (run once)


def self_test(api: SupersetClient, dashboard_id: int, timeout: float, rendering: tuple[int, ...] = RENDERING) -> Rendered:
    """Have the worker render dashboard `dashboard_id` (`thumbnail`); the image must not be blank."""
    started = time.monotonic()
    png = thumbnail(api, dashboard_id, timeout, rendering)
    found = colours(png)
    if found < MIN_COLOURS:
        raise NotRendered(f"the worker rendered a blank image ({found} colours)")
    return Rendered(Image.open(io.BytesIO(png)).size, found, round(time.monotonic() - started, 1), png)
