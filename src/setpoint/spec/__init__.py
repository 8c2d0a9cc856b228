"""The instance spec: models, loading and sizing (pure, no I/O beyond reading the spec file)."""

from setpoint.spec.load import load_spec, parse_spec
from setpoint.spec.model import InstanceSpec, supported_superset_versions, version_key
from setpoint.spec.sizing import Sizing, size_instance

__all__ = ["InstanceSpec", "Sizing", "load_spec", "parse_spec", "size_instance", "supported_superset_versions", "version_key"]
