"""Runs inside an instance's Superset virtualenv, against a restored copy of its metadata (the
restore drill's scratch cluster): open it with this Superset version and the instance's own
configuration, and report as JSON what Superset itself sees there.

- the schema revision, and whether it is a head of this version's migrations;
- dashboards, charts, datasets, users and saved queries, counted through Superset's models;
- how many database connections' passwords decrypt with the instance's SECRET_KEY.
Never prints a secret.
"""

import json
import os

from superset import config as C  # noqa: N812

C.SQLALCHEMY_DATABASE_URI = os.environ["SETPOINT_RESTORED_URI"]

from superset.app import create_app  # noqa: E402

app = create_app()
with app.app_context():
    import superset
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import text
    from superset import db, security_manager
    from superset.connectors.sqla.models import SqlaTable
    from superset.models.core import Database
    from superset.models.dashboard import Dashboard
    from superset.models.slice import Slice
    from superset.models.sql_lab import SavedQuery

    migrations = Config()
    migrations.set_main_option("script_location", os.path.join(os.path.dirname(superset.__file__), "migrations"))
    revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    # Decrypted one by one, so that one that does not open is counted, not raised.
    encrypted = Database.__table__.c.password.type
    stored = db.session.execute(text("SELECT password FROM dbs WHERE password IS NOT NULL")).scalars().all()
    decrypted = 0
    for value in stored:
        try:
            decrypted += bool(encrypted.process_result_value(bytes(value), db.engine.dialect))
        except Exception:  # noqa: BLE001 - a key that does not fit fails to decrypt
            pass
    print(json.dumps({
        "revision": revision,
        "revision_is_head": revision in ScriptDirectory.from_config(migrations).get_heads(),
        "dashboards": db.session.query(Dashboard).count(),
        "charts": db.session.query(Slice).count(),
        "datasets": db.session.query(SqlaTable).count(),
        "users": db.session.query(security_manager.user_model).count(),
        "saved_queries": db.session.query(SavedQuery).count(),
        "passwords": len(stored),
        "passwords_decrypted": decrypted,
    }))
