"""`setpoint probe-config`: a probe point's files, or one sentence when they cannot be written."""

from pathlib import Path

import pytest

from setpoint.errors import InputError
from setpoint.home import Home
from setpoint.observability.monitoring import write_probe_point_config


def test_the_modules_read_the_ca_bundle_where_it_will_be_on_the_probe_host(tmp_path):
    config, ca = write_probe_point_config(Home(tmp_path / "home"), tmp_path / "out", Path("/etc/prometheus/sp-ca.pem"))
    assert ca == tmp_path / "out" / "sp-ca.pem" and "BEGIN CERTIFICATE" in ca.read_text()
    assert "ca_file: /etc/prometheus/sp-ca.pem" in config.read_text()


def test_an_unwritable_directory_is_one_sentence_with_the_fix(tmp_path):
    with pytest.raises(InputError, match="cannot write the probe point's files into /proc/nope"):
        write_probe_point_config(Home(tmp_path / "home"), Path("/proc/nope"), Path("/etc/prometheus/ca.pem"))
