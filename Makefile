# The two commands of the README. Both set up what they need first (idempotent).
VENV := .venv
SETPOINT := $(VENV)/bin/setpoint

.PHONY: demo test bootstrap bench-dr

demo: bootstrap
	$(SETPOINT) up demo

test: bootstrap
	$(VENV)/bin/python -m pytest -ra

bootstrap:
	scripts/bootstrap

# Benchmarks print figures (ratios against a baseline measured in the same run); not part of `make test`.
bench-dr: bootstrap
	$(VENV)/bin/python -m benchmarks.dr_rebuild --json benchmarks/results-dr-rebuild.json
