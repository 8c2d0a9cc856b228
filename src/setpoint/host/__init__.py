"""The host as a service: Setpoint's own stable installation, its boot unit, and its capacity."""
