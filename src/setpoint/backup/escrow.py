"""Secrets escrow: the instance's secrets travel with its backups, encrypted with a recovery key
that is shown to the operator and never stored beside them.

The SECRET_KEY encrypts the database passwords kept in the metadata: a restore without it is
useless. Each backup therefore stores an encrypted bundle (the secret store and the spec) in every
repository. Only the recovery key opens it.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from setpoint.errors import InputError, SetpointError
from setpoint.backup.repositories import offsite_key, put, s3_client
from setpoint.secret import given_or_stored
from setpoint.spec.model import Offsite

SALT_BYTES = 16


def _fernet(recovery_key: str, salt: bytes) -> Fernet:
    key = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(recovery_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(payload: dict[str, Any], recovery_key: str) -> bytes:
    """Encrypt a payload with a key derived (scrypt) from the recovery key."""
    salt = os.urandom(SALT_BYTES)
    return salt + _fernet(recovery_key, salt).encrypt(json.dumps(payload).encode())


def unseal(bundle: bytes, recovery_key: str) -> dict[str, Any]:
    try:
        return json.loads(_fernet(recovery_key, bundle[:SALT_BYTES]).decrypt(bundle[SALT_BYTES:]))
    except (InvalidToken, ValueError):
        raise InputError("the recovery key does not open the escrowed secrets",
                         "give the instance's recovery key exactly as it was shown (setpoint recovery-key NAME)") from None


def format_key(recovery_key: str) -> str:
    """The recovery key in groups of five, as it is shown to people."""
    return "-".join(recovery_key[i:i + 5] for i in range(0, len(recovery_key), 5))


def parse_key(text: str) -> str:
    return text.replace("-", "").replace(" ", "").strip()


def offsite_credentials(spec, stored: dict[str, str]) -> dict[str, str]:
    """The off-site access keys of an instance spec: given in the environment variables it names
    (they then move into the secret store), else those `stored` by an earlier converge."""
    offsite = spec.backup.offsite
    return {key: given_or_stored(key, variable, stored, f"the off-site repository of {spec.name} needs its {what}")
            for key, variable, what in (("offsite_access_key", offsite.access_key_env, "access key"),
                                        ("offsite_secret_key", offsite.secret_key_env, "secret key"))}


def check_offsite(offsite: Offsite, secrets: dict[str, str]) -> None:
    """Fail fast, naming the cause, when the off-site bucket cannot be reached."""
    try:
        s3_client(offsite, secrets["offsite_access_key"], secrets["offsite_secret_key"]).head_bucket(Bucket=offsite.bucket)
    except (BotoCoreError, ClientError) as exc:
        raise SetpointError(
            f"the off-site repository s3://{offsite.bucket} at {offsite.endpoint}:{offsite.port} cannot be reached "
            f"({type(exc).__name__}: {str(exc)[:160]}), so the backup failed",
            "check the endpoint, bucket and keys in the spec's backup.offsite, then run the backup again",
        ) from None


def bundle_path(name: str) -> str:
    """The sealed bundle's place in every repository."""
    return f"escrow/{name}.bundle"


def bundle_key(offsite: Offsite, name: str) -> str:
    return offsite_key(offsite, bundle_path(name))


def fetch_offsite(name: str, offsite: Offsite, access_key: str, secret_key: str) -> bytes:
    try:
        response = s3_client(offsite, access_key, secret_key).get_object(Bucket=offsite.bucket, Key=bundle_key(offsite, name))
        return response["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise SetpointError(f"no escrowed secrets of '{name}' could be read off-site: {exc}",
                            "check the off-site endpoint, bucket, path and keys in the spec") from None


def escrow_instance(ctx, secrets: dict[str, str]) -> None:
    """Seal the secret store and the spec with the recovery key into every repository."""
    payload = {"secrets": {k: v for k, v in secrets.items() if k != "recovery_key"},
               "spec": ctx.spec.model_dump(mode="json")}
    bundle = seal(payload, secrets["recovery_key"])
    put(bundle_path(ctx.spec.name), bundle, ctx.paths.backup / "repo", ctx.data_user, ctx.spec.backup.offsite, secrets)

