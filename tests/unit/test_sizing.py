"""Sizing rules derive process counts from expected users and cores."""

import pytest

from setpoint.spec import size_instance


@pytest.mark.parametrize(
    "users, cores, celery, web",
    [
        (1, 2, 2, 2),  # two pool processes: a dashboard's queries run side by side
        (50, 2, 2, 2),
        (51, 2, 2, 3),
        (200, 2, 4, 5),
        (1000, 2, 20, 5),  # web workers capped at 2 x cores + 1
        (1000, 8, 20, 17),
    ],
)
def test_workers_follow_users_and_cores(users, cores, celery, web):
    sizing = size_instance(users, cores=cores)
    assert sizing.celery_concurrency == celery
    assert sizing.web_workers == web


def test_postgres_accepts_every_pool():
    sizing = size_instance(200, cores=2)
    processes = sizing.web_workers + sizing.celery_concurrency + 2
    assert sizing.pg_max_connections >= processes * (sizing.pool_size + sizing.pool_overflow)
    assert sizing.pool_recycle_s == 3600


def test_memory_grows_with_users_and_is_capped():
    assert size_instance(50).pg_shared_buffers_mb == 128
    assert size_instance(500).pg_shared_buffers_mb == 1280
    assert size_instance(10000).pg_shared_buffers_mb == 2048
