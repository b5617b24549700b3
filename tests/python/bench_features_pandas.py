"""pandas' side of `pricecast-bench features-frame`: the same features, gap rule, unusable
candle rule and row check as Pricecast's polars pipeline, computed the same way (features on
every row, one row check; RSI from one rolling sum), on the same candles, timed best of RUNS.

usage: bench_features_pandas.py CANDLES.parquet RUNS INTERVAL_MS

Prints JSON: {"rows": candles, "all_s": best time for every feature and the t+1 target,
"all_rows": rows kept, "all_sums": the sum of each column of the full frame but open_time,
"seed_s": best time for the seed app's five lags and MA10 (as the seed app computes them: shift
and rolling, no gap checks)}.
"""

import json
import sys
import time

import numpy as np
import pandas as pd


def all_features(df: pd.DataFrame, step: int) -> pd.DataFrame:
    t = (df["open_time"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    close, volume = df["close"], df["volume"]
    # An unusable close or volume is a missing candle: no slot, later slots one step on.
    usable = (close > 0) & np.isfinite(close) & (volume >= 0) & np.isfinite(volume)
    slot = (t + step * (~usable).cumsum()).where(usable)
    close, volume = close.where(usable, 1.0), volume.where(usable, 0.0)
    out = pd.DataFrame({"open_time": df["open_time"], "close": close})

    def consecutive(k):
        return (slot - slot.shift(k)) == k * step

    # Every feature on every row; the rows whose history crosses a gap are dropped once.
    for k in range(1, 6):
        out[f"price_t-{k}"] = close.shift(k)
    ma = {n: close.rolling(n).mean() for n in (5, 10, 20, 50)}
    out["ma_10"] = ma[10]
    for k in (1, 2, 3, 5, 10):
        out[f"log_ret_{k}"] = np.log(close / close.shift(k))
    for n in (5, 20, 50):
        out[f"ma_{n}"] = ma[n]
    for n in (5, 10, 20, 50):
        out[f"ma_ratio_{n}"] = close / ma[n]
    ret1 = np.log(close / close.shift(1)).fillna(0.0)
    for n in (10, 20):
        out[f"volatility_{n}"] = ret1.rolling(n).std()
    moved = close.diff().abs().fillna(0.0).rolling(14).sum()
    net = close - close.shift(14)
    out["rsi_14"] = (50 * (1 + net / moved)).where(moved - net > 0, 100.0)
    mean, std = volume.rolling(20).mean(), volume.rolling(20).std()
    out["volume_z_20"] = ((volume - mean) / std).where(std > 0)
    out["hour"] = df["open_time"].dt.hour
    out["day_of_week"] = df["open_time"].dt.dayofweek
    out["price_t+1"] = close.shift(-1).where(consecutive(-1))
    features = out.columns[2:-1]
    keep = consecutive(49) & out[features].notna().all(axis=1)  # ma_50 reads 49 earlier
    return out[keep]


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
    sums = {name: float(frame[name].astype("float64").sum()) for name in frame.columns[1:]}
    print(
        json.dumps(
            {
                "rows": len(df),
                "all_s": all_s,
                "all_rows": len(frame),
                "all_sums": sums,
                "seed_s": seed_s,
            }
        )
    )


if __name__ == "__main__":
    main()
