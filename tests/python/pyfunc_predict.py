"""Loads models with mlflow.pyfunc.load_model and predicts a frame, whole or with columns left out.

Usage: pyfunc_predict.py REQUEST_JSON

REQUEST_JSON: {"frame": [row objects by column name], "cases": [{"model_uri": "runs:/<id>/<path>",
"drop": [columns left out of the frame]}]}. The tracking server is MLFLOW_TRACKING_URI; S3
artifacts are read through MLFLOW_S3_ENDPOINT_URL and the AWS_* variables.

Prints a JSON array, one entry per case: {"predictions": [floats]} or {"error": message,
"error_class": MLflow's error class or the exception's type}.
"""

import json
import os
import sys

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException


def main():
    with open(sys.argv[1]) as handle:
        request = json.load(handle)
    frame = pd.DataFrame(request["frame"])
    models = {}
    out = []
    for case in request["cases"]:
        uri = case["model_uri"]
        if uri not in models:
            models[uri] = mlflow.pyfunc.load_model(uri)
        try:
            predictions = models[uri].predict(frame.drop(columns=case.get("drop", [])))
            out.append({"predictions": [float(p) for p in predictions]})
        except MlflowException as e:
            out.append({"error": e.message, "error_class": getattr(e, "error_class", e.error_code)})
        except Exception as e:
            out.append({"error": str(e), "error_class": type(e).__name__})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    main()
