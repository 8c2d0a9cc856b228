# gunicorn settings of instance "demo", rendered by Setpoint. Do not edit.
bind = "127.0.0.1:20001"
workers = 2
worker_class = "gevent"
worker_connections = 1000
timeout = 300
graceful_timeout = 30
keepalive = 5
limit_request_line = 0
limit_request_field_size = 0
forwarded_allow_ips = "127.0.0.1"
proc_name = "setpoint-demo-web"
accesslog = "-"
errorlog = "-"


def on_starting(server):
    # Metrics of the processes of a previous start would be summed with the new ones' (counters
    # start again from zero, which Prometheus reads as a reset).
    import glob
    import os

    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(path)


def post_fork(server, worker):
    # psycopg2 blocks a whole gevent worker unless its waits are made cooperative.
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
