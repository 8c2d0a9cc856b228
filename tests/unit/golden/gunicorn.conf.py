# gunicorn settings of instance "demo", rendered by Setpoint. Do not edit.
# The master loads Superset once and its workers share it; a reload (HUP) loads a changed
# configuration in a fresh master while the old workers serve (setpoint_web_master.py).
import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "setpoint_web_master", os.path.join(os.path.dirname(__file__), "setpoint_web_master.py"))
_master = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_master)
_master.patch()  # before Superset loads

bind = "127.0.0.1:20001"
workers = 2
worker_class = "gevent"
worker_connections = 1000
preload_app = True
timeout = 300
graceful_timeout = 30
keepalive = 5
limit_request_line = 0
limit_request_field_size = 0
forwarded_allow_ips = "127.0.0.1"
proc_name = "setpoint-demo-web"
accesslog = "-"
errorlog = "-"
control_socket_disable = True  # Setpoint signals the master; no socket is needed

on_starting = _master.on_starting
when_ready = _master.when_ready
on_reload = _master.on_reload
post_fork = _master.post_fork
post_worker_init = _master.post_worker_init
