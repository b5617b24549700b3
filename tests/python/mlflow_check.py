"""Reads a run and a registered model back with MLflow's own Python client and prints JSON.

Usage: mlflow_check.py TRACKING_URI RUN_ID [--model NAME] [--alias ALIAS ...] [--file PATH ...]

Prints {"run": {status, params, metrics, tags, artifact_uri}, "artifacts": [every file path],
"files": {path: {"sha256", "size"}}, "versions": [{version, run_id, source, tags, aliases}],
"aliases": {alias: version or null}}. S3 artifacts are read with boto3 through
MLFLOW_S3_ENDPOINT_URL and the AWS_* variables, as MLflow users do.
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


def all_artifacts(client, run_id, path=None):
    files = []
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            files.extend(all_artifacts(client, run_id, info.path))
        else:
            files.append(info.path)
    return files


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("tracking_uri")
    parser.add_argument("run_id")
    parser.add_argument("--model")
    parser.add_argument("--alias", action="append", default=[])
    parser.add_argument("--file", action="append", default=[])
    args = parser.parse_args()

    client = MlflowClient(tracking_uri=args.tracking_uri, registry_uri=args.tracking_uri)
    run = client.get_run(args.run_id)
    out = {
        "run": {
            "status": run.info.status,
            "params": run.data.params,
            "metrics": run.data.metrics,
            "tags": {k: v for k, v in run.data.tags.items()},
            "artifact_uri": run.info.artifact_uri,
        },
        "artifacts": sorted(all_artifacts(client, args.run_id)),
        "files": {},
        "versions": [],
        "aliases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.file:
            local = client.download_artifacts(args.run_id, path, tmp)
            with open(local, "rb") as f:
                data = f.read()
            out["files"][path] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    if args.model:
        for mv in client.search_model_versions(f"name='{args.model}'"):
            out["versions"].append(
                {
                    "version": int(mv.version),
                    "run_id": mv.run_id,
                    "source": mv.source,
                    "status": mv.status,
                    "tags": dict(mv.tags),
                    "aliases": list(getattr(mv, "aliases", []) or []),
                }
            )
        out["versions"].sort(key=lambda v: v["version"])
        for alias in args.alias:
            try:
                out["aliases"][alias] = int(client.get_model_version_by_alias(args.model, alias).version)
            except MlflowException:
                out["aliases"][alias] = None
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    main()
