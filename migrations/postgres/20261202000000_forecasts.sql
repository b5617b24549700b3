-- The forecast ledger: the champion's forecast for each closed candle after its training data,
-- written by pricecast-forecast and never changed. Forecast values are DOUBLE PRECISION: they are
-- the model's own f64 outputs (what /price/predict answers), kept bit for bit; the actual close
-- is read from `candles` (exact NUMERIC) when the target candle is known. A re-run inserts
-- nothing new: the primary key holds one forecast per series, horizon, candle and model version.
CREATE TABLE forecasts (
    symbol        TEXT             NOT NULL,
    interval      TEXT             NOT NULL,
    horizon       INTEGER          NOT NULL CHECK (horizon > 0),
    based_on      TIMESTAMPTZ      NOT NULL,
    target_time   TIMESTAMPTZ      NOT NULL,
    predicted     DOUBLE PRECISION NOT NULL,
    lower         DOUBLE PRECISION,
    upper         DOUBLE PRECISION,
    baseline      DOUBLE PRECISION NOT NULL,
    model_name    TEXT             NOT NULL,
    model_version BIGINT           NOT NULL CHECK (model_version > 0),
    run_id        TEXT             NOT NULL,
    made_at       TIMESTAMPTZ      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, horizon, based_on, model_version)
);

-- The scorecard reads a series' forecasts by target time.
CREATE INDEX forecasts_target_idx ON forecasts (symbol, interval, horizon, target_time);
