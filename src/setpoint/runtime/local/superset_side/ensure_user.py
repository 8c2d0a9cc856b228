"""Runs inside an instance's Superset virtualenv: create a user with its roles unless it exists
(the first admin, an emergency admin, the subject of an erasure drill).

The password comes in the environment (readable by this process's account and root only),
never on the command line: Superset's account cannot read the instance's secret store.
"""

import os
import sys

from superset.app import create_app

app = create_app()
with app.app_context():
    from superset import security_manager

    username = os.environ["SETPOINT_USER_USERNAME"]
    if security_manager.find_user(username=username):
        print("exists")
        sys.exit(0)
    roles = [security_manager.find_role(name) for name in os.environ["SETPOINT_USER_ROLES"].split(",")]
    if None in roles:
        sys.exit(f"no role named {os.environ['SETPOINT_USER_ROLES']}")
    user = security_manager.add_user(
        username,
        os.environ["SETPOINT_USER_FIRST_NAME"],
        os.environ["SETPOINT_USER_LAST_NAME"],
        os.environ["SETPOINT_USER_EMAIL"],
        roles,
        password=os.environ["SETPOINT_USER_PASSWORD"],
    )
    if not user:
        sys.exit(f"could not create the user {username}")
    print("created")
