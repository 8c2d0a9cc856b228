"""Sample content made here, without the internet: a deterministic sales table and a dashboard.

The data is generated (seeded, so every instance gets the same rows), loaded into its own
database with a read-only role, and the database connection, dataset, charts and dashboard are
created through Superset's own dashboard importer.
"""

from __future__ import annotations

import io
import json
import random
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import yaml

ROWS = 300_000
SEED = 20261121
DATABASE_NAME = "Sample Data"
EXAMPLES_DB = "examples"
READER_ROLE = "examples_reader"
TABLE = "sales"
DASHBOARD_TITLE = "Sales Overview"
DASHBOARD_SLUG = "sales-overview"

# Stable identities, so importing again updates rather than duplicates.
_NS = uuid.UUID("6f1c2b1e-5e8e-4c53-9d7e-5e7a9b3c1d20")
DATABASE_UUID = str(uuid.uuid5(_NS, "database"))
DATASET_UUID = str(uuid.uuid5(_NS, "dataset"))
DASHBOARD_UUID = str(uuid.uuid5(_NS, "dashboard"))

REGIONS = {
    "Europe": ["France", "Germany", "Spain", "Italy", "Netherlands", "Poland", "Sweden"],
    "North America": ["United States", "Canada", "Mexico"],
    "Asia Pacific": ["Japan", "Australia", "India", "Singapore", "South Korea"],
    "Latin America": ["Brazil", "Argentina", "Chile", "Colombia"],
    "Middle East & Africa": ["South Africa", "United Arab Emirates", "Nigeria", "Egypt"],
}
PRODUCT_LINES = {"Classic Cars": 95.0, "Motorcycles": 60.0, "Planes": 80.0, "Ships": 70.0, "Trains": 45.0, "Trucks": 75.0}
CHANNELS = ["Online", "Retail", "Partner"]
SEGMENTS = ["Consumer", "Small Business", "Enterprise"]

TABLE_DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    order_id integer PRIMARY KEY,
    order_date timestamp NOT NULL,
    region text NOT NULL,
    country text NOT NULL,
    product_line text NOT NULL,
    channel text NOT NULL,
    customer_segment text NOT NULL,
    quantity integer NOT NULL,
    unit_price numeric(10, 2) NOT NULL,
    revenue numeric(12, 2) NOT NULL
);
"""


def generate_sales(rows: int = ROWS, seed: int = SEED) -> Iterator[tuple]:
    """Deterministic sales orders over three years, with seasonality and growth."""
    rng = random.Random(seed)
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    span_s = 3 * 365 * 86400
    regions = list(REGIONS)
    region_weights = [30, 35, 20, 8, 7]
    lines = list(PRODUCT_LINES)
    for order_id in range(1, rows + 1):
        # Later orders are likelier (growth); November and December busier (season).
        offset = int(span_s * (rng.random() ** 0.8))
        when = start + timedelta(seconds=offset)
        if when.month < 11 and rng.random() < 0.08:
            when = when.replace(month=rng.choice([11, 12]), day=min(when.day, 28))
        region = rng.choices(regions, region_weights)[0]
        line = rng.choice(lines)
        quantity = rng.randint(1, 12)
        price = round(PRODUCT_LINES[line] * rng.uniform(0.7, 1.3), 2)
        yield (
            order_id,
            when.strftime("%Y-%m-%d %H:%M:%S"),
            region,
            rng.choice(REGIONS[region]),
            line,
            rng.choices(CHANNELS, [50, 35, 15])[0],
            rng.choices(SEGMENTS, [55, 30, 15])[0],
            quantity,
            f"{price:.2f}",
            f"{price * quantity:.2f}",
        )


def sales_copy_sql(rows: int = ROWS) -> str:
    """A psql script that creates the table and loads every row with COPY (idempotent)."""
    lines = [TABLE_DDL, f"TRUNCATE {TABLE};", f"COPY {TABLE} FROM STDIN;"]
    lines += ["\t".join(str(v) for v in row) for row in generate_sales(rows)]
    lines += ["\\.", f"ANALYZE {TABLE};", ""]
    return "\n".join(lines)


def reader_grants_sql() -> str:
    """The read-only role's privileges on the sample data."""
    return f"""
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {READER_ROLE};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER_ROLE};
ALTER ROLE {READER_ROLE} SET default_transaction_read_only = on;
"""


def _column(name: str, type_: str, is_dttm: bool = False) -> dict:
    return {
        "column_name": name, "verbose_name": None, "is_dttm": is_dttm, "is_active": True, "type": type_,
        "advanced_data_type": None, "groupby": True, "filterable": True, "expression": None,
        "description": None, "python_date_format": None, "extra": None,
    }


def _metric(name: str, expression: str, label: str, d3format: str | None = None) -> dict:
    return {
        "metric_name": name, "verbose_name": label, "metric_type": None, "expression": expression,
        "description": None, "d3format": d3format, "currency": None, "extra": None, "warning_text": None,
    }


def _dataset() -> dict:
    columns = [
        _column("order_id", "INTEGER"), _column("order_date", "TIMESTAMP WITHOUT TIME ZONE", is_dttm=True),
        _column("region", "TEXT"), _column("country", "TEXT"), _column("product_line", "TEXT"),
        _column("channel", "TEXT"), _column("customer_segment", "TEXT"), _column("quantity", "INTEGER"),
        _column("unit_price", "NUMERIC(10, 2)"), _column("revenue", "NUMERIC(12, 2)"),
    ]
    return {
        "table_name": TABLE, "main_dttm_col": "order_date", "description": "Generated sales orders",
        "default_endpoint": None, "offset": 0, "cache_timeout": None, "catalog": None, "schema": "public",
        "sql": None, "params": None, "template_params": None, "filter_select_enabled": True,
        "fetch_values_predicate": None, "extra": None, "normalize_columns": False,
        "always_filter_main_dttm": False, "uuid": DATASET_UUID, "version": "1.0.0",
        "database_uuid": DATABASE_UUID, "columns": columns,
        "metrics": [
            _metric("revenue", "SUM(revenue)", "Revenue", "$,.0f"),
            _metric("orders", "COUNT(*)", "Orders", ",d"),
            _metric("units", "SUM(quantity)", "Units sold", ",d"),
        ],
    }


def _time_axis(grain: str) -> dict:
    return {
        "columnType": "BASE_AXIS", "sqlExpression": "order_date", "label": "order_date",
        "expressionType": "SQL", "timeGrain": grain,
    }


# The chart whose data the synthetic checks load (spec probes.chart's default with examples on).
PROBED_CHART = "Top countries"

# (title, viz_type, extra params, query columns, metrics, row limit)
CHARTS = [
    ("Total revenue", "big_number_total", {"metric": "revenue", "y_axis_format": "SMART_NUMBER"}, [], ["revenue"], None),
    ("Monthly revenue", "echarts_timeseries_line",
     {"x_axis": "order_date", "time_grain_sqla": "P1M", "metrics": ["revenue"], "groupby": []},
     [_time_axis("P1M")], ["revenue"], 10000),
    ("Orders by region per quarter", "echarts_timeseries_bar",
     {"x_axis": "order_date", "time_grain_sqla": "P3M", "metrics": ["orders"], "groupby": ["region"], "stack": "Stack"},
     [_time_axis("P3M"), "region"], ["orders"], 10000),
    ("Revenue by product line", "pie",
     {"groupby": ["product_line"], "metric": "revenue", "donut": True, "show_labels": True},
     ["product_line"], ["revenue"], 100),
    ("Top countries", "table",
     {"query_mode": "aggregate", "groupby": ["country"], "metrics": ["revenue", "orders"],
      "order_desc": True, "row_limit": 20, "timeseries_limit_metric": "revenue"},
     ["country"], ["revenue", "orders"], 20),
    ("Units by channel", "echarts_area",
     {"x_axis": "order_date", "time_grain_sqla": "P1M", "metrics": ["units"], "groupby": ["channel"], "stack": "Stack"},
     [_time_axis("P1M"), "channel"], ["units"], 10000),
]


def _chart(title: str, viz_type: str, extra: dict, columns: list, metrics: list, row_limit: int | None) -> dict:
    params = {
        "viz_type": viz_type, "datasource": "1__table", "adhoc_filters": [], "time_range": "No filter",
        "color_scheme": "supersetColors", "extra_form_data": {}, "dashboards": [], **extra,
    }
    query = {
        "columns": columns, "metrics": metrics, "filters": [], "extras": {"having": "", "where": ""},
        "time_range": "No filter", "orderby": [[metrics[0], False]] if columns else [],
        "annotation_layers": [], "series_limit": 0, "order_desc": True,
        **({"row_limit": row_limit} if row_limit else {}),
    }
    query_context = {
        "datasource": {"id": 1, "type": "table"}, "force": False, "queries": [query],
        "form_data": params, "result_format": "json", "result_type": "full",
    }
    return {
        "slice_name": title, "description": None, "certified_by": None, "certification_details": None,
        "viz_type": viz_type, "params": params, "query_context": json.dumps(query_context),
        "cache_timeout": None, "uuid": str(uuid.uuid5(_NS, f"chart:{title}")), "version": "1.0.0",
        "dataset_uuid": DATASET_UUID,
    }


def _dashboard(charts: list[dict]) -> dict:
    position: dict = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": DASHBOARD_TITLE}},
    }
    for row_index in range(0, len(charts), 3):
        row_id = f"ROW-{row_index // 3}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {
            "type": "ROW", "id": row_id, "children": [], "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        for index, chart in enumerate(charts[row_index:row_index + 3], start=row_index):
            chart_id = f"CHART-{index}"
            position[row_id]["children"].append(chart_id)
            position[chart_id] = {
                "type": "CHART", "id": chart_id, "children": [], "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {"width": 4, "height": 50, "chartId": index + 1, "uuid": chart["uuid"],
                         "sliceName": chart["slice_name"]},
            }
    return {
        "dashboard_title": DASHBOARD_TITLE, "description": None, "css": "", "slug": DASHBOARD_SLUG,
        "certified_by": None, "certification_details": None, "published": True, "uuid": DASHBOARD_UUID,
        "position": position,
        "metadata": {"color_scheme": "supersetColors", "refresh_frequency": 0, "expanded_slices": {},
                     "label_colors": {}, "timed_refresh_immune_slices": [], "cross_filters_enabled": True,
                     "native_filter_configuration": []},
        "version": "1.0.0",
    }


def database_config(port: int) -> dict:
    """The connection to the sample data, as the read-only role (password supplied at import)."""
    return {
        "database_name": DATABASE_NAME,
        "sqlalchemy_uri": f"postgresql+psycopg2://{READER_ROLE}:XXXXXXXXXX@127.0.0.1:{port}/{EXAMPLES_DB}",
        "cache_timeout": None, "expose_in_sqllab": True, "allow_run_async": True, "allow_ctas": False,
        "allow_cvas": False, "allow_dml": False, "allow_csv_upload": False,
        "extra": {"allows_virtual_table_explore": True}, "uuid": DATABASE_UUID, "version": "1.0.0",
    }


def repoint_sql(port: int) -> str:
    """SQL that points the sample data's connection at the PostgreSQL on `port`: a restored copy
    of an instance has its own copy of the sample data, and its database guard refuses the source's."""
    return (f"UPDATE dbs SET sqlalchemy_uri = regexp_replace(sqlalchemy_uri, '@127\\.0\\.0\\.1:[0-9]+/', '@127.0.0.1:{port}/') "
            f"WHERE uuid = '{DATABASE_UUID}'")


DATABASE_FILE = "databases/Sample_Data.yaml"


def build_bundle(postgres_port: int) -> bytes:
    """A dashboard export bundle (ZIP of YAML) as Superset's importer reads it."""
    charts = [_chart(*definition) for definition in CHARTS]
    files = {
        "metadata.yaml": {"version": "1.0.0", "type": "Dashboard", "timestamp": "2026-01-01T00:00:00+00:00"},
        DATABASE_FILE: database_config(postgres_port),
        f"datasets/Sample_Data/{TABLE}.yaml": _dataset(),
        "dashboards/Sales_Overview.yaml": _dashboard(charts),
        **{f"charts/{c['slice_name'].replace(' ', '_')}.yaml": c for c in charts},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(f"sample_export/{name}", yaml.safe_dump(content, sort_keys=False))
    return buffer.getvalue()
