# The two commands of the README. Both set up what they need first (idempotent).
VENV := .venv
SETPOINT := $(VENV)/bin/setpoint

.PHONY: demo test bootstrap bench bench-dr

# As root, the host first gets Setpoint's own installation and its start at boot (setpoint host install).
demo: bootstrap
	@if [ "$$(id -u)" = 0 ]; then $(SETPOINT) host install; fi
	$(SETPOINT) up demo

test: bootstrap
	$(VENV)/bin/python -m pytest -ra --durations=30 -n 3 --dist loadscope --no-loadscope-reorder

bootstrap:
	scripts/bootstrap

# Benchmarks print figures (ratios against a baseline measured in the same run); not part of `make test`.
bench: bootstrap
	$(VENV)/bin/python -m benchmarks.dashboard --json benchmarks/results-dashboard.json

bench-dr: bootstrap
	$(VENV)/bin/python -m benchmarks.dr_rebuild --json benchmarks/results-dr-rebuild.json
