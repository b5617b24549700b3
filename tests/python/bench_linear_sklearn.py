"""Times scikit-learn's LinearRegression().fit on the pricecast-bench linear-fit data and prints JSON.

usage: bench_linear_sklearn.py X.npy Y.npy RUNS

Prints {"seconds": best fit time of RUNS, "coef": [...], "intercept": float}.
"""

import json
import sys
import time

import numpy as np
from sklearn.linear_model import LinearRegression


def main() -> None:
    x = np.load(sys.argv[1])
    y = np.load(sys.argv[2])
    runs = int(sys.argv[3])
    best = float("inf")
    model = None
    for _ in range(runs):
        start = time.perf_counter()
        model = LinearRegression().fit(x, y)
        best = min(best, time.perf_counter() - start)
    print(
        json.dumps(
            {
                "seconds": best,
                "coef": [float(c) for c in model.coef_],
                "intercept": float(model.intercept_),
            }
        )
    )


if __name__ == "__main__":
    main()
