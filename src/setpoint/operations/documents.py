"""An instance's operating documents, kept outside it: the disaster-recovery plan, the incident
runbook and (with a gdpr: section) the processing register. `up` and the host's scheduler write them into every backup repository
(off-site included) and commit them into the dashboards' git repository (docs/), so that they
are at hand when the instance, or its host, is not."""

from __future__ import annotations

from pathlib import Path

from setpoint.backup import dr, export, repositories
from setpoint.home import write_file
from setpoint.operations import gdpr, runbook
from setpoint.render import InstanceContext
from setpoint.secret import SecretStore

EXPORT_FOLDER = "docs"


def rendered(ctx: InstanceContext) -> dict[str, str]:
    """Each document's file name and text, as the instance is now."""
    documents = {dr.FILE: dr.render_plan(ctx), runbook.FILE: runbook.render_runbook(ctx)}
    if ctx.spec.gdpr is not None:
        documents[gdpr.REGISTER_FILE] = gdpr.render_register(ctx)
    return documents


def local_copy(ctx: InstanceContext, file: str) -> Path:
    """The working copy under the instance (docs/), which `setpoint dr plan` also writes."""
    return ctx.paths.root / "docs" / file


def _repository_path(ctx: InstanceContext, file: str) -> str:
    return f"docs/{ctx.spec.name}/{file}"


def publish(ctx: InstanceContext) -> list[str]:
    """Write every document into the instance's docs/, every backup repository and the
    dashboards' git repository; where they went."""
    documents = rendered(ctx)
    secrets = SecretStore(ctx.paths.secrets_file).load()
    offsite = ctx.spec.backup.offsite
    for file, text in documents.items():
        write_file(local_copy(ctx, file), text)
        repositories.put(_repository_path(ctx, file), text.encode(), ctx.paths.backup / "repo", ctx.data_user,
                         offsite, secrets)
    folder = _repository_path(ctx, "")
    places = [str(ctx.paths.backup / "repo" / folder) + "/"]
    if offsite is not None:
        places.append(repositories.offsite_location(offsite, folder))
    git_repository = export.last_repository(ctx.paths)
    if git_repository is not None:
        target, repo = git_repository
        for file, text in documents.items():
            write_file(repo / EXPORT_FOLDER / file, text)
        if export.stage(repo, EXPORT_FOLDER).strip():
            export.commit(repo, target, f"Update the operating documents of {ctx.spec.name}: {', '.join(documents)}", EXPORT_FOLDER)
        places.append(f"{target} ({EXPORT_FOLDER}/)")
    return places


def copies(ctx: InstanceContext, file: str) -> dict[str, str | None]:
    """A document as each place outside the instance holds it (None where it is missing)."""
    secrets = SecretStore(ctx.paths.secrets_file).load()
    found = {place: data.decode() if data is not None else None
             for place, data in repositories.read_all(_repository_path(ctx, file), ctx.paths.backup / "repo",
                                                      ctx.spec.backup.offsite, secrets).items()}
    git_repository = export.last_repository(ctx.paths)
    if git_repository is not None:
        target, repo = git_repository
        committed = export.git(repo, "show", f"HEAD:{EXPORT_FOLDER}/{file}", check=False)
        found[f"{target} ({EXPORT_FOLDER}/{file} at HEAD)"] = committed or None
    return found
