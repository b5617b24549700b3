"""Reads a Pricecast lake's feature files with pyarrow and polars only, and recomputes the seed
features, the one-candle log return and the target from the lake's candle files with plain
Python, as an independent check. Prints JSON.

usage: read_features.py ENDPOINT BUCKET PREFIX   (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
       read_features.py --local ROOT

Output: {"files": {path: {schema, rows, polars_rows, compression, open_time_ms, rows_by_time}},
"manifests": {path: manifest}, "checked": n, "mismatches": [...], "expected_rows": n}, where
expected_rows counts the candles with 49 consecutive candles before them.
"""

import io
import json
import math
import os
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(__file__))
import polars as pl  # noqa: E402
import pyarrow.fs as pafs  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from read_lake import open_fs  # noqa: E402

STEP_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}
HISTORY = 49


def files_under(fs, root, folder):
    infos = fs.get_file_info(pafs.FileSelector(f"{root}/{folder}", recursive=True, allow_not_found=True))
    for info in sorted(infos, key=lambda i: i.path):
        if info.type == pafs.FileType.File:
            with fs.open_input_file(info.path) as f:
                yield info.path[len(root) + 1 :], f.read()


def ms(value):
    return int(value.timestamp() * 1000)


def main() -> None:
    fs, root = open_fs()
    closes = {}
    step = None
    for relative, data in files_under(fs, root, "candles"):
        if not relative.endswith(".parquet"):
            continue
        step = STEP_MS[relative.split("interval=")[1].split("/")[0]]
        for row in pq.read_table(io.BytesIO(data)).to_pylist():
            closes[ms(row["open_time"])] = float(Decimal(str(row["close"])))
    files, manifests, mismatches = {}, {}, []
    checked = 0

    def check(name, time, got, expected):
        nonlocal checked
        checked += 1
        same = (got is None and expected is None) or (
            got is not None and expected is not None and math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12)
        )
        if not same and len(mismatches) < 20:
            mismatches.append({"column": name, "open_time_ms": time, "got": got, "expected": expected})

    for relative, data in files_under(fs, root, "features"):
        if relative.endswith("_manifest.json"):
            manifests[relative] = json.loads(data)
            continue
        parquet = pq.ParquetFile(io.BytesIO(data))
        table = parquet.read()
        frame = pl.read_parquet(io.BytesIO(data))
        rows = table.to_pylist()
        by_time = {}
        for row in rows:
            t = ms(row["open_time"])
            by_time[str(t)] = {k: v for k, v in row.items() if k != "open_time"}
            check("close", t, row["close"], closes.get(t))
            for k in range(1, 6):
                check(f"price_t-{k}", t, row[f"price_t-{k}"], closes.get(t - k * step))
            window = [closes.get(t - k * step) for k in range(10)]
            check("ma_10", t, row["ma_10"], None if None in window else sum(window) / 10)
            previous = closes.get(t - step)
            check("log_ret_1", t, row["log_ret_1"], math.log(row["close"] / previous) if previous else None)
            check("price_t+1", t, row["price_t+1"], closes.get(t + step))
        meta = parquet.metadata
        files[relative] = {
            "schema": {f.name: str(f.type) for f in table.schema},
            "columns": table.schema.names,
            "rows": table.num_rows,
            "polars_rows": frame.height,
            "compression": meta.row_group(0).column(0).compression if meta.num_row_groups else None,
            "open_time_ms": [ms(r["open_time"]) for r in rows],
            "rows_by_time": by_time,
        }
    expected_rows = sum(1 for t in closes if all(t - k * step in closes for k in range(1, HISTORY + 1)))
    print(json.dumps({
        "files": files,
        "manifests": manifests,
        "checked": checked,
        "mismatches": mismatches,
        "expected_rows": expected_rows,
    }))


if __name__ == "__main__":
    main()
