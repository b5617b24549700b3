"""The Diebold–Mariano statistic of two error series, computed with numpy alone, as the train
tests' independent check of Pricecast's.

Reads a JSON file ``{"model": [...], "baseline": [...], "lag": L}`` (forecast errors, row by
row) and prints ``{"statistic": DM, "p_value": p, "mean": d̄, "variance": σ²}``: the loss
differential ``d = |model| − |baseline|``, its Newey–West long-run variance with Bartlett
weights ``1 − k/(L+1)`` over autocovariances divided by n, ``DM = d̄ / sqrt(σ²/n)`` and the
two-sided normal p-value ``erfc(|DM| / sqrt(2))``.
"""

import json
import math
import sys

import numpy as np


def diebold_mariano(model, baseline, lag):
    d = np.abs(np.asarray(model, dtype=np.float64)) - np.abs(np.asarray(baseline, dtype=np.float64))
    n = d.size
    centred = d - d.mean()
    gamma = [np.dot(centred[k:], centred[: n - k]) / n for k in range(lag + 1)]
    variance = gamma[0] + 2.0 * sum((1.0 - k / (lag + 1.0)) * gamma[k] for k in range(1, lag + 1))
    statistic = d.mean() / math.sqrt(variance / n)
    return {
        "statistic": statistic,
        "p_value": math.erfc(abs(statistic) / math.sqrt(2.0)),
        "mean": float(d.mean()),
        "variance": float(variance),
    }


def main():
    with open(sys.argv[1], encoding="utf-8") as handle:
        document = json.load(handle)
    print(json.dumps(diebold_mariano(document["model"], document["baseline"], int(document["lag"]))))


if __name__ == "__main__":
    main()
