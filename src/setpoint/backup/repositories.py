"""Files that travel with an instance's backups: written beside pgBackRest's own data in every
repository of the instance, the local one and the off-site bucket, so that whoever holds a
repository also holds what is needed to use it (the sealed secrets, the recovery plan, the
runbook)."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from setpoint.errors import SetpointError
from setpoint.home import account_ids, is_root, open_beneath
from setpoint.spec.model import Offsite


def s3_client(offsite: Offsite, access_key: str, secret_key: str):
    return boto3.client(
        "s3",
        endpoint_url=f"https://{offsite.endpoint}:{offsite.port}",
        region_name=offsite.region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        verify=offsite.ca_file or True,
        config=Config(s3={"addressing_style": "path" if offsite.uri_style == "path" else "virtual"},
                      retries={"max_attempts": 2}, connect_timeout=10, read_timeout=30),
    )


def offsite_key(offsite: Offsite, relative: str) -> str:
    """Where a file of the repository lives in the off-site bucket (under the spec's path)."""
    return f"{offsite.path.strip('/')}/{relative}".lstrip("/")


def offsite_location(offsite: Offsite, relative: str) -> str:
    return f"s3://{offsite.bucket}/{offsite_key(offsite, relative)}"


def _instance_dir(repo_dir: Path) -> Path:
    """The instance's own directory (root's), above its local repository (backup/repo, which
    belongs to the data account): root opens files of the repository from there without following
    a link the data account could have planted (home.open_beneath)."""
    return repo_dir.parents[1]


def put(relative: str, data: bytes, repo_dir: Path, owner: str, offsite: Offsite | None,
        secrets: dict[str, str]) -> None:
    """Write `relative` into every repository (0600, the data account's locally)."""
    path = repo_dir / relative
    try:
        fd = open_beneath(_instance_dir(repo_dir), path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                          0o600, replace_link=True, make_dirs_for=owner)
    except OSError as exc:
        raise SetpointError(f"{path} could not be written: {exc.strerror} (Setpoint follows no link in a repository)",
                            f"make every directory on the way a real directory of {owner}, then run the command again") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, 0o600)
        if is_root():
            os.fchown(fd, *account_ids(owner))
        handle.write(data)
    if offsite is not None:
        try:
            s3_client(offsite, secrets["offsite_access_key"], secrets["offsite_secret_key"]).put_object(
                Bucket=offsite.bucket, Key=offsite_key(offsite, relative), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise SetpointError(f"{relative} could not be written off-site: {exc}",
                                "check the off-site endpoint, bucket and keys in the spec") from None


def read_all(relative: str, repo_dir: Path, offsite: Offsite | None, secrets: dict[str, str]) -> dict[str, bytes | None]:
    """`relative` as each repository holds it (None where it is missing or unreadable), by location."""
    path = repo_dir / relative
    try:
        with os.fdopen(open_beneath(_instance_dir(repo_dir), path), "rb") as handle:
            local: bytes | None = handle.read()
    except OSError:
        local = None
    found: dict[str, bytes | None] = {str(path): local}
    if offsite is not None:
        try:
            body = s3_client(offsite, secrets.get("offsite_access_key", ""), secrets.get("offsite_secret_key", "")).get_object(
                Bucket=offsite.bucket, Key=offsite_key(offsite, relative))["Body"].read()
        except (BotoCoreError, ClientError):
            body = None
        found[offsite_location(offsite, relative)] = body
    return found
