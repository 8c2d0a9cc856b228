"""Runs inside an instance's Superset virtualenv: re-encrypt what the metadata keeps encrypted
(databases' passwords and extras, SSH tunnels' keys) from the previous SECRET_KEY to the one the
configuration now reads, as `superset re-encrypt-secrets` does. The previous key comes in the
environment (readable by this process's account and root only), never on the command line.
"""

import os

from superset.app import create_app

app = create_app()
with app.app_context():
    from superset.utils.encrypt import SecretsMigrator

    SecretsMigrator(previous_secret_key=os.environ["SETPOINT_PREVIOUS_SECRET_KEY"]).run()
    print("re-encrypted")
