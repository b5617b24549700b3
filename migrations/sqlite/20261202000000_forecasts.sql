-- SQLite mirror of the forecast ledger: times are INTEGER milliseconds since the epoch (UTC),
-- forecast values REAL (the model's f64 outputs, bit for bit); the actual close is read from
-- `candles` (exact text) when known.
CREATE TABLE forecasts (
    symbol        TEXT    NOT NULL,
    interval      TEXT    NOT NULL,
    horizon       INTEGER NOT NULL CHECK (horizon > 0),
    based_on      INTEGER NOT NULL,
    target_time   INTEGER NOT NULL,
    predicted     REAL    NOT NULL,
    lower         REAL,
    upper         REAL,
    baseline      REAL    NOT NULL,
    model_name    TEXT    NOT NULL,
    model_version INTEGER NOT NULL CHECK (model_version > 0),
    run_id        TEXT    NOT NULL,
    made_at       INTEGER NOT NULL,
    PRIMARY KEY (symbol, interval, horizon, based_on, model_version)
) WITHOUT ROWID;

CREATE INDEX forecasts_target_idx ON forecasts (symbol, interval, horizon, target_time);
