"""pandas' side of `pricecast-bench features-frame`: the same features, gap rule and row
filter as Pricecast's polars pipeline, on the same candles, timed best of RUNS.

usage: bench_features_pandas.py CANDLES.parquet RUNS INTERVAL_MS

Prints JSON: {"rows": candles, "all_s": best time for every feature and the t+1 target,
"all_rows": rows kept, "seed_s": best time for the seed app's five lags and MA10 (as the seed
app computes them: shift and rolling, no gap checks)}.
"""

import json
import sys
import time

import numpy as np
import pandas as pd


def all_features(df: pd.DataFrame, step: int) -> pd.DataFrame:
    t = (df["open_time"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    close, volume = df["close"], df["volume"]
    out = pd.DataFrame({"open_time": df["open_time"], "close": close})

    def gap(k):
        return (t - t.shift(k)) == k * step

    def only_if(cond, value):
        return value.where(cond)

    for k in range(1, 6):
        out[f"price_t-{k}"] = only_if(gap(k), close.shift(k))
    out["ma_10"] = only_if(gap(9), close.rolling(10).mean())
    for k in (1, 2, 3, 5, 10):
        out[f"log_ret_{k}"] = only_if(gap(k), np.log(close / close.shift(k)))
    ma = {n: only_if(gap(n - 1), close.rolling(n).mean()) for n in (5, 10, 20, 50)}
    for n in (5, 20, 50):
        out[f"ma_{n}"] = ma[n]
    for n in (5, 10, 20, 50):
        out[f"ma_ratio_{n}"] = close / ma[n]
    ret1 = only_if(gap(1), np.log(close / close.shift(1)))
    for n in (10, 20):
        out[f"volatility_{n}"] = only_if(gap(n), ret1.rolling(n).std())
    change = close.diff()
    gain = change.clip(lower=0).rolling(14).mean()
    loss = (-change).clip(lower=0).rolling(14).mean()
    rsi = (100 - 100 / (1 + gain / loss)).where(loss > 0, 100.0)
    out["rsi_14"] = only_if(gap(14), rsi)
    mean, std = volume.rolling(20).mean(), volume.rolling(20).std()
    out["volume_z_20"] = only_if(gap(19) & (std > 0), (volume - mean) / std)
    out["hour"] = df["open_time"].dt.hour
    out["day_of_week"] = df["open_time"].dt.dayofweek
    out["price_t+1"] = close.shift(-1).where((t.shift(-1) - t) == step)
    features = out.columns[2:-1]
    complete = np.isfinite(out[features].astype("float64")).all(axis=1)
    return out[complete]


def seed_features(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"price": df["close"]})
    for k in range(1, 6):
        out[f"price_t-{k}"] = df["close"].shift(k)
    out["ma_10"] = df["close"].rolling(10).mean()
    return out.dropna()


def best_of(runs, work):
    best, result = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    path, runs, step = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    df = pd.read_parquet(path)
    all_s, frame = best_of(runs, lambda: all_features(df, step))
    seed_s, _ = best_of(runs, lambda: seed_features(df))
    print(json.dumps({"rows": len(df), "all_s": all_s, "all_rows": len(frame), "seed_s": seed_s}))


if __name__ == "__main__":
    main()
