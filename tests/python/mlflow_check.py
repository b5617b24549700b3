"""Reads a run and a registered model back with MLflow's own Python client and prints JSON.

Usage: mlflow_check.py TRACKING_URI RUN_ID [--model NAME] [--alias ALIAS ...] [--file PATH ...]
                       [--download-to DIR] [--experiment NAME]

Prints {"run": {status, params, metrics, tags, artifact_uri, experiment}, "artifacts": [every
file path], "files": {path: {"sha256", "size"}}, "versions": [{version, run_id, source, tags,
aliases}], "aliases": {alias: version or null}}. RUN_ID `-` reads no run (then "run" is null).
--download-to keeps each --file under DIR at its artifact path. --experiment adds
"experiment_runs": [{run_id, status, lifecycle_stage}] of that experiment (deleted runs too), or
null when it does not exist. S3 artifacts are read with boto3 through MLFLOW_S3_ENDPOINT_URL and
the AWS_* variables, as MLflow users do.
"""

import argparse
import hashlib
import json
import os
import shutil
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
    parser.add_argument("--download-to")
    parser.add_argument("--experiment")
    args = parser.parse_args()

    client = MlflowClient(tracking_uri=args.tracking_uri, registry_uri=args.tracking_uri)
    out = {"run": None, "artifacts": [], "files": {}, "versions": [], "aliases": {}}
    if args.run_id != "-":
        run = client.get_run(args.run_id)
        out["run"] = {
            "status": run.info.status,
            "params": run.data.params,
            "metrics": run.data.metrics,
            "tags": {k: v for k, v in run.data.tags.items()},
            "artifact_uri": run.info.artifact_uri,
            "experiment": client.get_experiment(run.info.experiment_id).name,
        }
        out["artifacts"] = sorted(all_artifacts(client, args.run_id))
        with tempfile.TemporaryDirectory() as tmp:
            for path in args.file:
                local = client.download_artifacts(args.run_id, path, tmp)
                with open(local, "rb") as f:
                    data = f.read()
                out["files"][path] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                if args.download_to:
                    kept = os.path.join(args.download_to, path)
                    os.makedirs(os.path.dirname(kept), exist_ok=True)
                    shutil.copyfile(local, kept)
    if args.experiment:
        experiment = client.get_experiment_by_name(args.experiment)
        if experiment is None:
            out["experiment_runs"] = None
        else:
            runs = client.search_runs([experiment.experiment_id], run_view_type=3)
            out["experiment_runs"] = sorted(
                (
                    {
                        "run_id": r.info.run_id,
                        "status": r.info.status,
                        "lifecycle_stage": r.info.lifecycle_stage,
                    }
                    for r in runs
                ),
                key=lambda r: r["run_id"],
            )
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
