"""Runs inside an instance's Superset virtualenv: re-encrypt what the metadata keeps encrypted
(databases' passwords, extras and certificates, SSH tunnels' passwords and keys) from the previous
SECRET_KEY to the one the configuration now reads, with Superset's own SecretsMigrator (what
`superset re-encrypt-secrets` runs). The previous key comes in the environment (readable by this
process's account and root only), never on the command line.

Superset 6.1's SecretsMigrator looks for the encrypted columns in `db.metadata`, which is empty:
Superset's models are declared on Flask-AppBuilder's `Model`, whose metadata is another one. So
`superset re-encrypt-secrets` re-encrypts nothing and says nothing, and the instance then cannot
open its own databases (apache/superset#39391, fixed upstream by #39390 after 6.1.0: use the plain
command once every supported version has the fix). Here the migrator looks in the models' metadata (with the models that hold
encrypted columns imported), and every encrypted value must open with the previous key before
anything changes; the migration is one transaction. Prints one JSON line.
"""

import importlib
import json
import os
import sys

from superset.app import create_app

MODELS = ("superset.models.core", "superset.databases.ssh_tunnel.models")

app = create_app()
with app.app_context():
    for module in MODELS:
        importlib.import_module(module)
    from flask_appbuilder import Model
    from sqlalchemy_utils import EncryptedType

    from superset import db
    from superset.utils.encrypt import SecretsMigrator

    class ModelsSecretsMigrator(SecretsMigrator):
        def discover_encrypted_fields(self) -> dict:
            return {name: {column.name: column.type for column in table.columns if isinstance(column.type, EncryptedType)}
                    for name, table in Model.metadata.tables.items()
                    if any(isinstance(column.type, EncryptedType) for column in table.columns)}

    previous = os.environ["SETPOINT_PREVIOUS_SECRET_KEY"]
    migrator = ModelsSecretsMigrator(previous_secret_key=previous)
    fields = migrator.discover_encrypted_fields()
    if "dbs" not in fields:
        sys.exit(f"found no encrypted column of the databases (only {sorted(fields)}): nothing was re-encrypted")
    values = 0
    with db.engine.connect() as conn:
        for table, columns in fields.items():
            for row in conn.execute(f"SELECT id, {', '.join(columns)} FROM {table}"):  # noqa: S608 - names from the models
                for column, kind in columns.items():
                    if row[column] is None:
                        continue
                    try:
                        EncryptedType(type_in=kind.underlying_type, key=previous).process_result_value(
                            SecretsMigrator._read_bytes(column, row[column]), db.engine.dialect)
                    except Exception:  # noqa: BLE001 - any failure means the key does not open it
                        sys.exit(f"{table}.{column} of row {row['id']} does not open with the previous key: nothing was re-encrypted")
                    values += 1
    migrator.run()
    print(json.dumps({"tables": sorted(fields), "values": values}))
