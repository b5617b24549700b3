"""MLflow ``python_function`` loader of Pricecast models (numpy and pandas only).

Pricecast logs this module as the ``code/`` folder of every model it trains; the model's
``MLmodel`` names it as the ``loader_module`` and ``model.json`` as its ``data``, so that
``mlflow.pyfunc.load_model(...)`` returns a model whose ``predict`` gives Pricecast's forecasts
without any Pricecast code installed.

``model.json`` is the file Pricecast itself serves from (format version 1): the feature names,
the standardiser learned on the training rows, and the fitted regression as smartcore 0.7
serialises it. Every model predicts the standardised log return ``z`` to the close ``horizon``
candles ahead from standardised features, and the forecast is
``anchor × exp(target_mean + target_scale × z)``:

* linear, ridge, lasso, elastic net: ``z = intercept + Σ weight_j × (x_j − mean_j) / scale_j``;
* random forest: the mean over the trees of the leaf each standardised row falls in (a row
  goes to a node's ``true_child`` when its value of ``split_feature`` is ≤ ``split_value``);
* naive: no regression (``{"Naive": {}}``); the forecast is the anchor itself.

The anchor is the ``last_close`` column (the close of the candle the features describe): with
it the forecast is exactly Pricecast's. Without it, and only for a model that takes
``price_t-1``, the anchor is ``price_t-1``, the newest close a frame of the seed app's columns
(``price_t-1`` … ``price_t-5``, ``ma_10``) holds: the same predicted return applied to that
close. ``predict`` returns a 1-D numpy array of closes, one per input row.
"""

import json

import numpy as np
import pandas as pd

#: The ``model.json`` layout this loader reads.
FORMAT_VERSION = 1
#: The input column holding the close the forecast starts from.
LAST_CLOSE = "last_close"
#: The feature that anchors the forecast when ``last_close`` is not given.
ANCHOR_FEATURE = "price_t-1"

_LINEAR_KINDS = ("Ridge", "Lasso", "ElasticNet")


def _load_pyfunc(data_path):
    """MLflow's entry point: ``data_path`` is the model's ``model.json``."""
    with open(data_path, "rb") as handle:
        document = json.load(handle)
    return PricecastModel(document)


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"model.json: {what} is {value!r}, not a number")
    return float(value)


def _numbers(values, count, what):
    if not isinstance(values, list) or len(values) != count:
        raise ValueError(f"model.json: {what} must hold {count} numbers")
    return np.array([_number(v, what) for v in values], dtype=np.float64)


class _Tree:
    """One regression tree as flat arrays, node 0 the root."""

    def __init__(self, nodes, features, what):
        if not isinstance(nodes, list) or not nodes:
            raise ValueError(f"model.json: {what} has no nodes")
        count = len(nodes)
        self.feature = np.zeros(count, dtype=np.int64)
        self.threshold = np.full(count, np.nan)
        self.true_child = np.full(count, -1, dtype=np.int64)
        self.false_child = np.full(count, -1, dtype=np.int64)
        self.output = np.zeros(count)
        for i, node in enumerate(nodes):
            self.output[i] = _number(node.get("output"), f"{what} node {i} output")
            true_child, false_child = node.get("true_child"), node.get("false_child")
            if true_child is None:
                continue
            feature = node.get("split_feature")
            valid = (
                isinstance(feature, int)
                and 0 <= feature < features
                and isinstance(true_child, int)
                and isinstance(false_child, int)
                and i < true_child < count
                and i < false_child < count
            )
            if not valid:
                raise ValueError(f"model.json: {what} node {i} is not a valid split")
            self.feature[i] = feature
            split = node.get("split_value")
            # smartcore compares with NaN when a split has no value: every row goes false.
            self.threshold[i] = np.nan if split is None else _number(split, f"{what} split")
            self.true_child[i] = true_child
            self.false_child[i] = false_child

    def leaf_outputs(self, z):
        """The output of the leaf each row of ``z`` (rows × features) reaches."""
        rows = np.arange(z.shape[0])
        node = np.zeros(z.shape[0], dtype=np.int64)
        while True:
            inner = self.true_child[node] >= 0
            if not inner.any():
                return self.output[node]
            at, where = node[inner], rows[inner]
            goes_true = z[where, self.feature[at]] <= self.threshold[at]
            node[inner] = np.where(goes_true, self.true_child[at], self.false_child[at])


class PricecastModel:
    """A Pricecast model read from ``model.json``; ``predict`` takes a pandas DataFrame."""

    def __init__(self, document):
        if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
            found = document.get("format") if isinstance(document, dict) else None
            raise ValueError(
                f"model.json has format version {found!r}; this loader reads version "
                f"{FORMAT_VERSION}: log the model again with a matching Pricecast"
            )
        model = document["model"]
        self.feature_names = [str(name) for name in model["feature_names"]]
        p = len(self.feature_names)
        scaler = model["scaler"]
        self.feature_mean = _numbers(scaler["feature_mean"], p, "feature_mean")
        self.feature_scale = _numbers(scaler["feature_scale"], p, "feature_scale")
        self.target_mean = _number(scaler["target_mean"], "target_mean")
        self.target_scale = _number(scaler["target_scale"], "target_scale")
        fitted = model["fitted"]
        if not isinstance(fitted, dict) or len(fitted) != 1:
            raise ValueError("model.json: fitted must name one regression")
        (kind, body), = fitted.items()
        self.kind = kind
        self.trees = None
        self.naive = False
        if kind == "Naive":
            self.naive = True
        elif kind == "Linear":
            self.weights = _numbers(body["weights"], p, "weights")
            self.intercept = 0.0
        elif kind in _LINEAR_KINDS:
            self.weights = _numbers(body["coefficients"]["values"], p, "coefficients")
            self.intercept = _number(body["intercept"], "intercept")
        elif kind == "RandomForest":
            trees = body["forest_regressor"]["trees"]
            if not isinstance(trees, list) or not trees:
                raise ValueError("model.json: the random forest has no trees")
            self.trees = [
                _Tree(tree["nodes"], p, f"tree {t}") for t, tree in enumerate(trees)
            ]
        else:
            raise ValueError(f"model.json: unknown regression {kind!r}")

    def predict(self, model_input, params=None):
        """Forecast closes for each row of ``model_input`` (a DataFrame with every feature)."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        missing = [name for name in self.feature_names if name not in frame.columns]
        if missing:
            raise ValueError(f"the input lacks the model's features {missing}")
        x = frame[self.feature_names].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(x)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise ValueError(
                f"feature {self.feature_names[column]} is {x[row, column]} in row {row}"
            )
        anchor = self._anchor(frame, x)
        if self.naive:
            return anchor.copy()
        standardised = (x - self.feature_mean) / self.feature_scale
        if self.trees is None:
            z = np.full(x.shape[0], self.intercept)
            for j in range(x.shape[1]):
                z = z + self.weights[j] * standardised[:, j]
        else:
            z = np.zeros(x.shape[0])
            for tree in self.trees:
                z = z + tree.leaf_outputs(standardised)
            z = z / len(self.trees)
        close = anchor * np.exp(self.target_mean + self.target_scale * z)
        if not (np.isfinite(close) & (close > 0)).all():
            raise ValueError("the model produced a close that is not a positive number")
        return close

    def _anchor(self, frame, x):
        """The close each forecast starts from: ``last_close``, else ``price_t-1``."""
        if LAST_CLOSE in frame.columns:
            anchor, name = frame[LAST_CLOSE].to_numpy(dtype=np.float64), LAST_CLOSE
        elif ANCHOR_FEATURE in self.feature_names:
            anchor = x[:, self.feature_names.index(ANCHOR_FEATURE)]
            name = ANCHOR_FEATURE
        else:
            raise ValueError(
                f"the input has no {LAST_CLOSE} column, and the model takes no "
                f"{ANCHOR_FEATURE} to start the forecast from"
            )
        bad = ~(np.isfinite(anchor) & (anchor > 0))
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{name} is {anchor[row]} in row {row}; it must be positive")
        return anchor
