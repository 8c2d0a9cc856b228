"""What Setpoint adds to Superset's Celery so that no task is lost and no query stays `running`.
Runs inside Superset.

Copied beside superset_config.py, which installs it. The Celery settings are in that file (a task
is acknowledged after it ran, and goes back to the queue when its process dies); this module adds
what settings cannot:

- `guard` wraps every task: a task runs at most MAX_ATTEMPTS times. One whose process died (kill
  -9, out of memory) runs again; one that killed its process every time is a poison task: it ends,
  and its SQL Lab query or chart tells the user the worker stopped and to run it again.
- `guard` also runs a scheduled task (beat's) once per minute it was scheduled for: a beat killed
  between a send and recording it sends again when it restarts, and that second run is skipped.
- `restore_orphans` runs when the worker starts: the tasks a killed worker had taken go back to
  the queue at once instead of after the broker's visibility timeout. An instance runs exactly one
  worker, so every unacknowledged task at its start belongs to a worker that is gone.
- `stamp` records when a task was queued, so `setpoint status` shows the oldest one's age.
- the reaper (a thread of the worker's main process): every REAP_EVERY_S, a SQL Lab query still
  `running` or `pending` a minute past the instance's time limit is marked `failed`;
- `connection_mutator` gives PostgreSQL analytics connections a statement_timeout;
- `quiet_superset_teardown` stops a traceback Superset 6.1 logs after every task;
- `announce_ready` writes the worker's process id to a file once it consumes from the broker:
  `up` waits for that instead of asking the worker over the broker (a process loading Superset's
  Celery app, seconds of CPU each time).
- `share_loaded_code` runs in the worker's main process before it forks its pool: what Superset
  loaded leaves the garbage collector's reach (`gc.freeze`), so the pool processes keep sharing
  those pages with it instead of each copying them at its first full collection (an idle worker
  with two pool processes: 374 MiB PSS before, 281 after).

Stdlib only at import; Celery, redis and SQLAlchemy are imported where used.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import time

MAX_ATTEMPTS = 2
REAP_EVERY_S = 20
ATTEMPTS_KEY = "setpoint:attempts:{}"
SCHEDULED_KEY = "setpoint:scheduled:{}:{}"
SQL_LAB_TASK = "sql_lab.get_sql_results"
CHART_TASKS = ("load_chart_data_into_cache", "load_explore_json_into_cache")

WORKER_STOPPED = ("The worker running this query stopped before it finished (it was killed or ran out of "
                  "memory) {attempts} times. Run the query again; if it stops again, make it lighter "
                  "(fewer rows, a narrower filter).")
REAPED = ("This query was still running after the instance's time limit of {limit} s, and no worker "
          "is running it any more; it was stopped. Run it again, or make it lighter.")

logger = logging.getLogger("setpoint.tasks")


class TaskSafety:
    """The instance's broker, metadata database and time limit, and the hooks that use them."""

    def __init__(self, broker_url: str, metadata_uri: str, time_limit_s: int, grace_s: int,
                 scheduled_tasks: tuple[str, ...] = (), ready_file: str | None = None) -> None:
        self.broker_url = broker_url
        self.ready_file = ready_file
        self.scheduled_tasks = scheduled_tasks
        self.metadata_uri = metadata_uri
        self.time_limit_s = time_limit_s
        self.grace_s = grace_s
        self._redis = None
        self._redis_pid = None
        self._engine = None

    @property
    def visibility_timeout_s(self) -> int:
        """How long the broker waits before it hands an unacknowledged task to another worker:
        above the longest task, its shutdown grace and the reaper's period."""
        return self.time_limit_s + 60 + self.grace_s + 300

    def redis(self):
        if self._redis is None or self._redis_pid != os.getpid():  # one client per pool process
            import redis

            self._redis, self._redis_pid = redis.Redis.from_url(self.broker_url), os.getpid()
        return self._redis

    # --- at most MAX_ATTEMPTS runs of a task ---

    def count_attempt(self, task_id: str) -> int:
        key = ATTEMPTS_KEY.format(task_id)
        pipe = self.redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, self.visibility_timeout_s * 2)
        return int(pipe.execute()[0])

    def first_run_in_slot(self, task_name: str, queued_at: float, task_id: str) -> bool:
        """Whether this task is the first sent for the minute it was queued in (or a retry of it:
        the same task id)."""
        key, client = SCHEDULED_KEY.format(task_name, int(queued_at // 60)), self.redis()
        return bool(client.set(key, task_id, nx=True, ex=3600)) or client.get(key) == task_id.encode()

    def guard(self, call):
        """The `@__call__` task annotation: count each run; end a task that died too often; run a
        scheduled task once per minute it was scheduled for."""
        safety = self

        def guarded(task, *args, **kwargs):
            request = task.request
            if request.called_directly:
                return call(task, *args, **kwargs)
            if task.name in safety.scheduled_tasks:
                queued_at = getattr(request, "setpoint_queued_at", None) or time.time()
                if not safety.first_run_in_slot(task.name, queued_at, request.id or ""):
                    logger.warning("%s for %s already ran: beat sent it twice; not running it again", task.name,
                                   time.strftime("%H:%M", time.localtime(queued_at)))
                    return None
            if request.id and task.acks_late:
                attempt = safety.count_attempt(request.id)
                if attempt > MAX_ATTEMPTS:
                    logger.error("task %s[%s] killed its worker process %d times: not running it again",
                                 task.name, request.id, attempt - 1)
                    safety.give_up(task.name, args, kwargs, attempt - 1)
                    return None
                if attempt > 1:
                    logger.warning("task %s[%s]: attempt %d after its worker process died", task.name,
                                   request.id, attempt)
            return call(task, *args, **kwargs)

        return guarded

    def give_up(self, task_name: str, args: tuple, kwargs: dict, attempts: int) -> None:
        """Tell the user of a poison task's query or chart that it stopped."""
        message = WORKER_STOPPED.format(attempts=attempts)
        try:
            if task_name == SQL_LAB_TASK:
                query_id = kwargs.get("query_id", args[0] if args else None)
                self.fail_queries("id = :query_id", {"query_id": query_id, "message": message})
            elif task_name in CHART_TASKS:
                from superset.extensions import async_query_manager

                job = kwargs.get("job_metadata", args[0] if args else {})
                async_query_manager.update_job(job, async_query_manager.STATUS_ERROR, errors=[{"message": message}])
        except Exception:  # noqa: BLE001 - the task ends either way; the reaper is the backstop
            logger.exception("could not report the end of task %s", task_name)

    # --- the metadata's SQL Lab queries ---

    def fail_queries(self, condition: str, params: dict) -> int:
        """Mark the queries matching `condition` that are still running or pending as failed."""
        import sqlalchemy

        if self._engine is None:  # no pool: a connection per call, none kept between the reaper's passes
            self._engine = sqlalchemy.create_engine(self.metadata_uri, poolclass=sqlalchemy.pool.NullPool)
        with self._engine.begin() as conn:
            result = conn.execute(sqlalchemy.text(
                "UPDATE query SET status = 'failed', error_message = :message, end_time = :now_ms, "
                f"changed_on = :now WHERE status IN ('running', 'pending') AND {condition}"
            ), {"now_ms": time.time() * 1000, "now": datetime.datetime.now(), **params})
            return result.rowcount

    def reap(self) -> int:
        """Fail the queries running or pending past the time limit, the grace and a minute."""
        cutoff_ms = (time.time() - self.time_limit_s - self.grace_s - 60) * 1000
        reaped = self.fail_queries("COALESCE(start_running_time, start_time) < :cutoff",
                                   {"cutoff": cutoff_ms, "message": REAPED.format(limit=self.time_limit_s)})
        if reaped:
            logger.warning("reaped %d SQL Lab queries left running past %d s", reaped, self.time_limit_s)
        return reaped

    def start_reaper(self, **_) -> None:
        def loop() -> None:
            while True:
                try:
                    self.reap()
                except Exception:  # noqa: BLE001 - the database may be restarting; try again later
                    logger.exception("the query reaper could not run")
                time.sleep(REAP_EVERY_S)

        threading.Thread(target=loop, name="setpoint-query-reaper", daemon=True).start()

    # --- the broker ---

    def restore_orphans(self, sender=None, **_) -> None:
        """Put back on their queues the tasks that the previous, killed worker had taken."""
        from kombu.transport.redis import Channel

        app = sender.app
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            if not isinstance(channel, Channel):
                return
            client = channel.client
            tags = client.hkeys(channel.unacked_key)
            for tag in tags:
                channel.qos.restore_by_tag(tag, client)
            if tags:
                logger.warning("put %d task(s) of a stopped worker back on their queues", len(tags))

    def connection_mutator(self, url, params: dict, *_):
        """DB_CONNECTION_MUTATOR: analytics connections to PostgreSQL cancel a statement past the
        time limit, so a query whose worker died stops in the database too."""
        if url.get_backend_name() == "postgresql":
            connect_args = params.setdefault("connect_args", {})
            options = connect_args.get("options", "")
            if "statement_timeout" not in options:
                connect_args["options"] = f"{options} -c statement_timeout={self.time_limit_s * 1000}".strip()
        return url, params

    @staticmethod
    def quiet_superset_teardown(**_) -> None:
        """Superset 6.1's task_postrun `teardown` runs after the task's app context is gone and logs
        a traceback after every task; that context's own teardown already removed the session."""
        import sys

        from celery import signals

        module = sys.modules.get("superset.tasks.celery_app")
        if module is not None and hasattr(module, "teardown") \
                and not module.flask_app.config.get("SQLALCHEMY_COMMIT_ON_TEARDOWN"):
            signals.task_postrun.disconnect(module.teardown)

    @staticmethod
    def stamp(headers=None, **_) -> None:
        if headers is not None:
            headers.setdefault("setpoint_queued_at", time.time())

    @staticmethod
    def share_loaded_code(**_) -> None:
        import gc

        gc.collect()
        gc.freeze()

    def announce_ready(self, **_) -> None:
        if self.ready_file:
            with open(self.ready_file, "w") as handle:
                handle.write(str(os.getpid()))

    def install(self) -> dict:
        """Connect the hooks; return the task annotation that applies to every task."""
        from celery import signals

        signals.worker_init.connect(self.restore_orphans, weak=False)
        signals.worker_init.connect(self.quiet_superset_teardown, weak=False)
        signals.worker_init.connect(self.share_loaded_code, weak=False)
        signals.worker_ready.connect(self.start_reaper, weak=False)
        signals.worker_ready.connect(self.announce_ready, weak=False)
        signals.before_task_publish.connect(self.stamp, weak=False)
        return {"@__call__": self.guard}
