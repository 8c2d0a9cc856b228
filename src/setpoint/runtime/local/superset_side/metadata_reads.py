"""Fewer reads of the metadata database per request. Runs inside Superset.

Copied beside superset_config.py, which installs it. Building and loading its reads of the
metadata database was about half of a web worker's CPU on a warm chart-data request (its answer
already in the cache; py-spy). With the permission cache (setpoint_permission_cache.py) such a
request still read it 10 times; with the two changes here, 7 (PostgreSQL's statement log on demo,
BEGIN and ROLLBACK aside):
- the caller loads with their roles, their groups and the groups' roles in one query, not three
  (Flask-AppBuilder reads each collection when it is first used), on every request;
- a dataset is read once per request: Superset's query context and then each of its query objects
  look it up by id, and the later lookups find it in the request's own session (SQLAlchemy's
  identity map, which holds only what this request loaded).
Nothing is kept beyond the request. Stdlib only at import.
"""

from __future__ import annotations


def install(app) -> None:
    from superset.extensions import db

    load_users_with_roles(app.appbuilder.sm, db)
    read_datasets_once_per_request(db)


def load_users_with_roles(sm, db) -> None:
    from sqlalchemy.orm import joinedload

    user_model = sm.user_model
    options = [joinedload(user_model.roles)]
    if hasattr(user_model, "groups"):  # Flask-AppBuilder 4.6 and later
        options.append(joinedload(user_model.groups).joinedload(sm.group_model.roles))

    def get_user_by_id(pk):
        return db.session.get(user_model, pk, options=options)

    sm.get_user_by_id = get_user_by_id


def read_datasets_once_per_request(db) -> None:
    from superset.daos.datasource import DatasourceDAO

    look_up = DatasourceDAO.get_datasource  # bound to the class

    def get_datasource(cls, *args, **kwargs):
        # (type, id) by position or by name: `datasource_id` before Superset 5, then
        # `database_id_or_uuid`, which may also be a UUID (looked up as before).
        kind = kwargs.get("datasource_type", args[0] if args else None)
        key = kwargs.get("database_id_or_uuid", kwargs.get("datasource_id", args[1] if len(args) > 1 else None))
        model = cls.sources.get(kind)
        if model is not None and str(key).isdigit():
            found = db.session.get(model, int(key))
            if found is not None:
                return found
        return look_up(*args, **kwargs)

    DatasourceDAO.get_datasource = classmethod(get_datasource)
