"""The seed app's prediction flow, its MLflow calls unchanged, against a tracking server.

Usage: seed_predict.py FRAME_JSON

FRAME_JSON holds the feature rows the seed app's service built, as a JSON array of objects by
column name; any columns (the flow picks its features by prefix), the newest row last. The
tracking server is MLFLOW_TRACKING_URI, and S3 artifacts are read through
MLFLOW_S3_ENDPOINT_URL and the AWS_* variables, as the seed app reads them.

Prints JSON: {"run_id": the run the flow loaded, "features": the columns it picked,
"prediction": model.predict(df[features])[0] or null, "error": why that failed or null,
"frame_prediction": model.predict(df)[0] (every column of the frame, so also `last_close` when
there is one) or null, "frame_error": why that failed or null}.
"""

import json
import os
import sys

import mlflow
import pandas as pd


def main():
    with open(sys.argv[1]) as handle:
        df = pd.DataFrame(json.load(handle)).tail(1)
    out = {"features": None, "prediction": None, "error": None}

    # The seed app's calls, as it makes them.
    mlflow.set_tracking_uri(os.getenv("MLFLOW_TRACKING_URI", "http://localhost:5001"))
    mlflow.set_experiment("bitcoin_prediction_s3")
    runs = mlflow.search_runs(order_by=["start_time DESC"], max_results=1)
    model = mlflow.pyfunc.load_model(f"runs:/{runs.iloc[0]['run_id']}/linear_regression_model")
    features = [c for c in df.columns if c.startswith("price_t-") or c.startswith("ma_")]
    try:
        prediction = model.predict(df[features])[0]
        out["prediction"] = float(prediction)
    except Exception as e:  # the seed app answered 500 with the message
        out["error"] = f"{type(e).__name__}: {e}"

    out["run_id"] = runs.iloc[0]["run_id"]
    out["features"] = features
    try:
        out["frame_prediction"], out["frame_error"] = float(model.predict(df)[0]), None
    except Exception as e:
        out["frame_prediction"], out["frame_error"] = None, f"{type(e).__name__}: {e}"
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    main()
