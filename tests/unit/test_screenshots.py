"""Screenshots: when an image counts as blank, how long a render may hold the worker, and the
settings an instance renders with."""

import ast
import io
import random

from PIL import Image, ImageDraw

from setpoint.services import screenshots
from setpoint.spec import parse_spec
from tests.unit.test_render import context, rendered_files


def config_literals(**spec_fields) -> tuple[dict, str]:
    """The literal settings of an instance's superset_config.py, and its text."""
    text = rendered_files(context(**spec_fields))["superset_config.py"]
    literals = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                literals[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return literals, text


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_a_white_page_with_a_spinner_is_blank_and_a_page_of_charts_is_not():
    page = Image.new("RGB", (800, 600), "white")
    ImageDraw.Draw(page).ellipse((380, 280, 420, 320), outline=(32, 167, 201), width=4)  # antialiased: a few shades
    assert screenshots.colours(png(page)) < screenshots.MIN_COLOURS
    charts = Image.new("RGB", (800, 600), "white")
    draw = ImageDraw.Draw(charts)
    rng = random.Random(7)
    for x in range(0, 800, 4):  # bars in a gradient, as a chart's series and its shading
        draw.rectangle((x, 600 - rng.randrange(50, 550), x + 3, 600), fill=(x % 256, (3 * x) % 256, 200 - x // 8))
    assert screenshots.colours(png(charts)) >= screenshots.MIN_COLOURS


def test_a_hung_page_gives_the_worker_back_after_the_specs_load_timeout():
    soft, hard = screenshots.task_time_limits(parse_spec({"name": "demo", "screenshots": {"load_timeout_s": 120}}))
    assert soft == 120 + screenshots.FIXED_WAITS_S and hard == soft + 30
    assert screenshots.task_time_limits(parse_spec({"name": "demo"}))[0] < 300  # tighter than Superset's own 300 s


def test_the_worker_renders_with_debians_chromedriver_as_the_viewer_and_thumbnails_follow_the_spec():
    config, text = config_literals()
    assert config["WEBDRIVER_TYPE"] == "chrome"
    assert config["WEBDRIVER_CONFIGURATION"]["service"]["executable_path"] == "/usr/bin/chromedriver"
    assert "--disable-background-networking" in config["WEBDRIVER_OPTION_ARGS"]
    assert config["WEBDRIVER_BASEURL"] == "http://127.0.0.1:20001/"  # the instance's own gunicorn
    assert "THUMBNAIL_EXECUTORS = [ExecutorType.CURRENT_USER]" in text
    assert "ALERT_REPORTS_EXECUTORS = [ExecutorType.OWNER]" in text
    assert config["FEATURE_FLAGS"]["THUMBNAILS"] is True
    off, _ = config_literals(screenshots={"thumbnails": False, "load_timeout_s": 30})
    assert off["FEATURE_FLAGS"]["THUMBNAILS"] is False and off["SCREENSHOT_LOAD_WAIT"] == 30
