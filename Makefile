# The two commands of the README. Both set up what they need first (idempotent).
VENV := .venv
SETPOINT := $(VENV)/bin/setpoint

.PHONY: demo test bootstrap

demo: bootstrap
	$(SETPOINT) up demo

test: bootstrap
	$(VENV)/bin/python -m pytest -ra

bootstrap:
	scripts/bootstrap
