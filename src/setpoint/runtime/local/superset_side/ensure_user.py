"""Runs inside an instance's Superset virtualenv: create the first admin unless it exists.

The password comes in the environment (readable by this process's account and root only),
never on the command line: Superset's account cannot read the instance's secret store.
"""

import os
import sys

from superset.app import create_app

app = create_app()
with app.app_context():
    from superset import security_manager

    password = os.environ["SETPOINT_ADMIN_PASSWORD"]
    username = os.environ["SETPOINT_ADMIN_USERNAME"]
    if security_manager.find_user(username=username):
        print("exists")
        sys.exit(0)
    user = security_manager.add_user(
        username,
        os.environ["SETPOINT_ADMIN_FIRST_NAME"],
        os.environ["SETPOINT_ADMIN_LAST_NAME"],
        os.environ["SETPOINT_ADMIN_EMAIL"],
        security_manager.find_role("Admin"),
        password=password,
    )
    if not user:
        sys.exit(f"could not create the admin user {username}")
    print("created")
