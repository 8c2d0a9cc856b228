"""Setpoint: managed Apache Superset, production-grade by default."""

__version__ = "0.1.0"
