"""Runs inside an instance's Superset virtualenv: which saved databases the guard now refuses.

Prints a JSON list of database names whose connection URL the instance's database guard
(DB_SQLA_URI_VALIDATOR) refuses, so that `up` can say so instead of charts failing later.
"""

import json

from superset.app import create_app

app = create_app()
with app.app_context():
    from superset.extensions import db
    from superset.models.core import Database
    from superset.databases.utils import make_url_safe

    validate = app.config["DB_SQLA_URI_VALIDATOR"]
    refused = []
    for database in db.session.query(Database).order_by(Database.database_name):
        try:
            validate(make_url_safe(database.sqlalchemy_uri_decrypted))
        except Exception:  # noqa: BLE001 - any refusal (or an unreadable URL) is reported
            refused.append(database.database_name)
    print(json.dumps(refused))
