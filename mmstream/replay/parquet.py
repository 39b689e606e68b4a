"""Events as Parquet: one row per event, the envelope as columns and the payload as JSON text.

Parquet is what archive consumers (pandas, DuckDB, Spark, Ray Data) read fastest; the payload
stays JSON so every event type fits one schema and the event contract stays the only schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmstream.errors import ConfigError

COLUMNS = ("schema", "type", "device_id", "stream_id", "seq", "t_capture", "t_publish")


def require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ConfigError("Parquet output needs pyarrow: pip install 'mmstream[ray]' "
                          "(or pyarrow)") from exc
    return pyarrow


def jsonl_to_parquet(jsonl: Path, parquet: Path) -> int:
    """Convert an events JSONL file; returns the number of rows written."""
    pa = require_pyarrow()
    columns: dict[str, list[Any]] = {name: [] for name in (*COLUMNS, "payload")}
    with jsonl.open("rb") as file:
        for line in file:
            if not line.strip():
                continue
            event = json.loads(line)
            for name in COLUMNS:
                columns[name].append(event.get(name))
            columns["payload"].append(json.dumps(event.get("payload"), separators=(",", ":")))
    schema = pa.schema([("schema", pa.string()), ("type", pa.string()),
                        ("device_id", pa.string()), ("stream_id", pa.string()),
                        ("seq", pa.int64()), ("t_capture", pa.float64()),
                        ("t_publish", pa.float64()), ("payload", pa.string())])
    table = pa.Table.from_pydict(columns, schema=schema)
    pa.parquet.write_table(table, parquet)
    return table.num_rows


def read_parquet_events(parquet: Path) -> list[dict[str, Any]]:
    """The events of a Parquet result as the same dicts their JSONL lines decode to."""
    pa = require_pyarrow()
    rows = pa.parquet.read_table(parquet).to_pylist()
    return [{**{k: row[k] for k in COLUMNS}, "payload": json.loads(row["payload"])}
            for row in rows]
