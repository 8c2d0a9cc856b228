"""`setpoint dr rebuild`: recreate a destroyed instance on a clean host from the off-site repository
alone, with its recovery key."""

from __future__ import annotations

import yaml

from setpoint.backup.escrow import fetch_offsite, offsite_credentials, parse_key, unseal
from setpoint.backup.pgbackrest import PgBackRest
from setpoint.errors import InputError
from setpoint.home import Home, chown, service_user, write_file
from setpoint.runtime.local import converge
from setpoint.secret import SecretStore
from setpoint.spec import InstanceSpec, parse_spec


def rebuild_from_offsite(home: Home, spec: InstanceSpec, recovery_key: str, log=lambda m: None, step=lambda m: None):
    """Fetch the escrowed secrets, restore the metadata from the off-site repository, converge."""
    name, offsite = spec.name, spec.backup.offsite
    if offsite is None:
        raise InputError("the spec names no off-site repository (backup.offsite)", "give the spec the instance had, with its backup.offsite")
    if home.instance(name).root.exists():
        raise InputError(f"instance '{name}' already exists on this host", f"destroy it first (setpoint destroy {name} --yes) or rebuild elsewhere")
    keys = offsite_credentials(spec, stored={})  # a clean host has no secret store yet
    step("fetching the escrowed secrets from the off-site repository")
    payload = unseal(fetch_offsite(name, offsite, keys["offsite_access_key"], keys["offsite_secret_key"]), parse_key(recovery_key))
    escrowed = parse_spec(payload["spec"], source="the escrowed spec")
    # What the instance was, reached through the off-site settings given now. Its sample data, if
    # it had any, comes with its database (state: examples_loaded), and so do its rules.
    rebuilt = escrowed.model_copy(update={"backup": escrowed.backup.model_copy(update={"offsite": offsite})})
    paths = home.instance(name)
    paths.root.mkdir(parents=True)
    user = service_user()
    SecretStore(paths.secrets_file, owner=user).update({**payload["secrets"], "recovery_key": parse_key(recovery_key), **keys})
    write_file(paths.spec_file, yaml.safe_dump(rebuilt.model_dump(mode="json"), sort_keys=False))
    paths.write_state({"migrated": rebuilt.superset_version, "examples_loaded": True, "rebuilt_from": "offsite"})
    log(f"recovered the secrets and spec of {name} from s3://{offsite.bucket}{offsite.path}")

    def restore_from_offsite(ctx) -> None:
        ctx.paths.pg_data.mkdir(mode=0o700, exist_ok=True)
        chown(ctx.paths.pg_data, ctx.data_user)
        PgBackRest(ctx).restore(ctx.paths.pg_data, repo=2)

    return converge.up(home, rebuilt, log=log, step=step, restore_data=restore_from_offsite)
