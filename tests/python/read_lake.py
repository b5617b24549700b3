"""Reads a Pricecast lake with pyarrow and polars only, as any analyst would, and prints JSON.

usage: read_lake.py ENDPOINT BUCKET PREFIX   (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
       read_lake.py --local ROOT

For each Parquet file under candles/: the Arrow schema, Parquet compression, statistics and
encodings, row count (pyarrow and polars), duplicate and sort checks, and every row with
decimals as exact strings; and each _manifest.json as parsed.
"""

import io
import json
import os
import sys

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def open_fs():
    if sys.argv[1] == "--local":
        return pafs.LocalFileSystem(), sys.argv[2].rstrip("/")
    endpoint, bucket, prefix = sys.argv[1], sys.argv[2], sys.argv[3].strip("/")
    scheme, host = endpoint.split("://", 1)
    fs = pafs.S3FileSystem(
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        endpoint_override=host,
        scheme=scheme,
        region="us-east-1",
    )
    return fs, f"{bucket}/{prefix}" if prefix else bucket


def main() -> None:
    fs, root = open_fs()
    infos = fs.get_file_info(pafs.FileSelector(f"{root}/candles", recursive=True, allow_not_found=True))
    files, manifests = {}, {}
    for info in sorted(infos, key=lambda i: i.path):
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(root) + 1 :]
        with fs.open_input_file(info.path) as f:
            data = f.read()
        if relative.endswith("_manifest.json"):
            manifests[relative] = json.loads(data)
            continue
        if not relative.endswith(".parquet"):
            files[relative] = {"unexpected": True}
            continue
        parquet = pq.ParquetFile(io.BytesIO(data))
        table = parquet.read()
        meta = parquet.metadata
        column = meta.row_group(0).column(2)
        times = table.column("open_time").to_pylist()
        frame = pl.read_parquet(io.BytesIO(data))
        rows = []
        for row in table.to_pylist():
            rows.append({k: (str(v) if v is not None and k not in ("trades",) else v) for k, v in row.items()}
                        | {"open_time_ms": int(row["open_time"].timestamp() * 1000)})
        files[relative] = {
            "schema": {f.name: str(f.type) for f in table.schema},
            "nullable": {f.name: f.nullable for f in table.schema},
            "rows": table.num_rows,
            "polars_rows": frame.height,
            "polars_dtypes": {name: str(dtype) for name, dtype in frame.schema.items()},
            "row_groups": meta.num_row_groups,
            "compression": column.compression,
            "statistics": column.is_stats_set,
            "encodings": {
                meta.row_group(0).column(i).path_in_schema: sorted(meta.row_group(0).column(i).encodings)
                for i in range(meta.num_columns)
            } if meta.num_row_groups else {},
            "sorted": all(a < b for a, b in zip(times, times[1:])),
            "duplicates": len(times) - len(set(times)),
            "size": len(data),
            "metadata": {k.decode(): v.decode() for k, v in (meta.metadata or {}).items() if not k.startswith(b"ARROW")},
            "values": rows,
        }
    print(json.dumps({"files": files, "manifests": manifests}))


if __name__ == "__main__":
    main()
