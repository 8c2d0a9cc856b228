"""Who may change what, where Superset 6.1's permissions cannot say it. Runs inside Superset.

Copied beside superset_config.py, whose FLASK_APP_MUTATOR calls `install`. Superset checks owners
for dashboards, charts and datasets; these requests check nothing but a class permission
(`can_write on Theme`, `can_write on Tag`...), which Gamma and Alpha hold, so any of their users
changed anyone's. Each guard below is a before_request hook on the API, and refuses with 403:

- themes, CSS templates and annotation layers have no owners: only their creator (or an admin)
  changes, deletes, imports over, or adds annotations to one;
- tags: tagging or untagging an object needs to own it (a saved query: to have saved it);
  changing or deleting a tag needs to have made it; a deleted tag takes its tagged objects along
  (Superset leaves them behind, where they block deleting their creator);
- stopping a SQL Lab query needs to have run it;
- a dashboard's layout may name only charts its editor may read (a chart id is a sequential
  number: any chart's definition was readable through one's own dashboard), and the dashboard's
  chart list leaves out the charts the reader may not read;
- URL fields (a dataset's default_endpoint, an object's external_url) take only http(s) and
  relative URLs, from anyone (400): a `javascript:` URL would be a link in the lists.

Admins pass every other guard. Each names the upstream change it stands in for in GUARDS: remove one when
every Superset version Setpoint supports has it. Stdlib only at import.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from urllib.parse import unquote, urlsplit

logger = logging.getLogger("setpoint.ownership")

# What each guard stands in for upstream, and when to remove it (the scorecard's facts name them,
# point 8). "After 6.1.0" means merged into Superset's master after the 6.1.0 release.
GUARDS = {
    "creator_only": "themes, CSS templates and annotation layers have no owners in Superset 6.1; themes get editors "
                    "in apache/superset#42404 (after 6.1.0), the other two nowhere yet: remove for themes once every "
                    "supported version has #42404",
    "tags_on_owned_objects": "tagging checks no ownership in Superset 6.1; apache/superset#40333, #41457 and #43390 "
                             "(after 6.1.0) check it: remove once every supported version has them (keep the clean-up "
                             "of a deleted tag's objects, fixed nowhere yet)",
    "own_queries_only": "POST /api/v1/query/stop stops anyone's query in Superset 6.1; apache/superset#39996 (after "
                        "6.1.0): remove once every supported version has it",
    "readable_charts_only": "a dashboard's layout may name any chart in Superset 6.1; apache/superset#42716 (after "
                            "6.1.0) hides unreadable charts' form_data, not the layout: keep until the layout is checked",
    "web_urls_only": "URL fields accept any scheme in Superset 6.1, fixed nowhere yet",
}
REFUSED = "You may change only what you own or made: ask its owner or an admin."
UNREADABLE_CHARTS = "This dashboard names charts you may not read (ids {ids}): remove them from its layout."
BAD_URL = "{field} must be an http(s) or relative URL."

CREATOR_ONLY = re.compile(r"^/api/v1/(theme|css_template|annotation_layer)/(?:(\d+)(?:/.*)?|import/)?$")
TAG_OBJECT = re.compile(r"^/api/v1/tag/(\d+)/(\d+)/(?:[^/]+/)?$")
TAG = re.compile(r"^/api/v1/tag/(\d+)$")
TAGS = re.compile(r"^/api/v1/tag/(?:bulk_create)?$")
QUERY_STOP = "/api/v1/query/stop"
DASHBOARD_WRITE = re.compile(r"^/api/v1/dashboard/(?:\d+|[^/]+/copy/)?$")
DASHBOARD_CHARTS = re.compile(r"^/api/v1/dashboard/[^/]+/charts$")
URL_FIELDS = ("default_endpoint", "external_url")
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def rison_ids(query: str | None) -> list:
    """The items of a rison list `!(1,2)` or `!('a','b')` (a bulk delete's ?q=)."""
    if not query or not query.startswith("!(") or not query.endswith(")"):
        return []
    return [item.strip("'") for item in re.findall(r"'(?:[^'!]|!.)*'|[^,]+", query[2:-1])]


def chart_ids(body: dict) -> set[int]:
    """The charts a dashboard's layout names: position_json, and json_metadata's positions (copy)."""
    layouts = []
    for key, path in (("position_json", ()), ("json_metadata", ("positions",))):
        value = body.get(key)
        try:
            value = json.loads(value) if isinstance(value, str) else value
            for step in path:
                value = value.get(step) if isinstance(value, dict) else None
        except ValueError:
            continue
        if isinstance(value, dict):
            layouts.append(value)
    return {int(component["meta"]["chartId"]) for layout in layouts for component in layout.values()
            if isinstance(component, dict) and isinstance(component.get("meta"), dict)
            and str(component["meta"].get("chartId", "")).isdigit()}


def is_web_url(value) -> bool:
    """http(s), or relative to the instance; empty is no URL."""
    if value in (None, ""):
        return True
    if not isinstance(value, str):
        return False
    scheme = urlsplit(value.strip()).scheme.lower()
    return scheme in ("", "http", "https") and not value.strip().lower().startswith(("javascript", "data", "vbscript"))


def requester():
    """The user behind this request, from a browser session or an API bearer token; None when
    anonymous."""
    from flask import g
    from flask_jwt_extended import verify_jwt_in_request
    from flask_login import current_user

    if current_user.is_authenticated:
        return current_user
    try:
        verify_jwt_in_request(optional=True)  # sets g.user (Flask-AppBuilder's load_user_jwt)
    except Exception:  # noqa: BLE001 - an expired or forged token: Superset answers it itself
        return None
    user = getattr(g, "user", None)
    return user if getattr(user, "is_authenticated", False) else None


def install(app) -> None:
    from flask import jsonify, request
    from superset import db
    from superset.connectors.sqla.models import SqlaTable
    from superset.models.annotations import AnnotationLayer
    from superset.models import core
    from superset.models.dashboard import Dashboard
    from superset.models.slice import Slice
    from superset.models.sql_lab import Query, SavedQuery
    from sqlalchemy import event
    from sqlalchemy.orm import Session
    from superset.tags.models import ObjectType, Tag

    sm = app.appbuilder.sm
    creator_only = {"css_template": core.CssTemplate, "annotation_layer": AnnotationLayer}
    if hasattr(core, "Theme"):  # themes came with Superset 6.0
        creator_only["theme"] = core.Theme
    tagged_models = {ObjectType.query: SavedQuery, ObjectType.chart: Slice, ObjectType.dashboard: Dashboard,
                     ObjectType.dataset: SqlaTable}

    def made_by(user, obj) -> bool:
        return obj is None or obj.created_by_fk == user.id

    def owns(user, object_type: ObjectType, object_id) -> bool:
        obj = db.session.get(tagged_models[object_type], int(object_id))
        if obj is None:
            return True  # Superset answers 404 itself
        if isinstance(obj, SavedQuery):
            return obj.user_id == user.id
        return sm.is_owner(obj)

    def object_type(value) -> ObjectType | None:
        try:
            return ObjectType(int(value)) if str(value).isdigit() else ObjectType[str(value)]
        except (KeyError, ValueError):
            return None

    def refused(message: str = REFUSED):
        logger.warning("refused %s %s: %s", request.method, request.path, message)
        return jsonify(message=message), 403

    def body() -> dict:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    def tag_changes_allowed(user) -> bool:
        if (match := TAG_OBJECT.match(request.path)) and request.method in ("POST", "DELETE"):
            kind = object_type(match.group(1))
            return kind is None or owns(user, kind, match.group(2))
        if (match := TAG.match(request.path)) and request.method == "PUT":
            if not made_by(user, db.session.get(Tag, int(match.group(1)))):
                return False
        elif TAGS.match(request.path) and request.method == "DELETE":
            names = [unquote(name) for name in rison_ids(request.args.get("q"))]
            return all(made_by(user, tag) for tag in db.session.query(Tag).filter(Tag.name.in_(names)))
        elif not (TAGS.match(request.path) and request.method == "POST"):
            return True
        data = body()
        objects = list(data.get("objects_to_tag") or [])
        objects += [o for t in data.get("tags") or [] if isinstance(t, dict) for o in t.get("objects_to_tag") or []]
        for item in objects:
            if isinstance(item, (list, tuple)) and len(item) == 2 and (kind := object_type(item[0])) is not None \
                    and str(item[1]).isdigit() and not owns(user, kind, item[1]):
                return False
        return True

    # Each guard first looks at the path, and only then asks for the user it judges (`judged`):
    # None for an admin (Superset's own checks suffice) or an anonymous request (Superset refuses
    # it). Most writes (a chart's data is a POST) concern no guard, and cost no user lookup.
    def creator_only_guard(judged):
        if not (match := CREATOR_ONLY.match(request.path)) or match.group(1) not in creator_only or judged() is None:
            return None
        if request.path.endswith("/import/"):
            return refused("Only an admin may import over existing objects.") if request.form.get("overwrite") == "true" else None
        if request.method == "POST" and match.group(2) is None:
            return None  # a new one
        ids = [match.group(2)] if match.group(2) else rison_ids(request.args.get("q"))
        model = creator_only[match.group(1)]
        return None if all(made_by(judged(), db.session.get(model, int(i))) for i in ids if str(i).isdigit()) else refused()

    def tag_guard(judged):
        if not request.path.startswith("/api/v1/tag/") or judged() is None:
            return None
        return None if tag_changes_allowed(judged()) else refused()

    def query_stop_guard(judged):
        if request.path != QUERY_STOP or judged() is None:
            return None
        query = db.session.query(Query).filter_by(client_id=str(body().get("client_id", ""))).one_or_none()
        return refused("You may stop only your own queries.") if query is not None and query.user_id != judged().id else None

    def dashboard_layout_guard(judged):
        if not DASHBOARD_WRITE.match(request.path) or request.method not in ("POST", "PUT") or judged() is None:
            return None
        unreadable = sorted(i for i in chart_ids(body())
                            if (chart := db.session.get(Slice, i)) is not None and not sm.can_access_chart(chart))
        return refused(UNREADABLE_CHARTS.format(ids=", ".join(map(str, unreadable)))) if unreadable else None

    guards = (creator_only_guard, tag_guard, query_stop_guard, dashboard_layout_guard)

    @app.before_request
    def _guard_writes():
        if request.method not in WRITES or not request.path.startswith("/api/v1/"):
            return None
        data = body() if request.method in ("POST", "PUT") else {}
        if bad := next((field for field in URL_FIELDS if field in data and not is_web_url(data[field])), None):
            return jsonify(message=BAD_URL.format(field=bad)), 400  # from anyone, admins included

        @functools.cache
        def judged():
            user = requester()
            return None if user is None or sm.is_admin() else user

        return next((answer for guard in guards if (answer := guard(judged)) is not None), None)

    @app.after_request
    def _readable_charts_only(response):
        if request.method != "GET" or not DASHBOARD_CHARTS.match(request.path) or response.status_code != 200:
            return response
        if requester() is None or sm.is_admin():
            return response
        answer = response.get_json(silent=True)
        charts = answer.get("result") if isinstance(answer, dict) else None
        if isinstance(charts, list):
            readable = [c for c in charts if isinstance(c, dict) and (s := db.session.get(Slice, c.get("id"))) is not None
                        and sm.can_access_chart(s)]
            if len(readable) != len(charts):
                answer["result"] = readable
                response.set_data(json.dumps(answer))
        return response

    @event.listens_for(Session, "before_flush")
    def _untag_with_deleted_tags(session, flush_context, instances):  # noqa: ARG001 - SQLAlchemy's signature
        for tag in [o for o in session.deleted if isinstance(o, Tag)]:
            for tagged in tag.objects:
                session.delete(tagged)
