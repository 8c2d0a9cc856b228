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


def post_fork(server, worker):
    # psycopg2 blocks a whole gevent worker unless its waits are made cooperative.
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
