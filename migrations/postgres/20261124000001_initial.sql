-- Candles, job runs, watermarks, known exchange gaps and the seed app's bitcoin_prices view.

CREATE TABLE candles (
    symbol          TEXT        NOT NULL,
    interval        TEXT        NOT NULL,
    open_time       TIMESTAMPTZ NOT NULL,
    open            NUMERIC     NOT NULL CHECK (open > 0),
    high            NUMERIC     NOT NULL CHECK (high > 0),
    low             NUMERIC     NOT NULL CHECK (low > 0),
    close           NUMERIC     NOT NULL CHECK (close > 0),
    volume          NUMERIC     NOT NULL CHECK (volume >= 0),
    quote_volume    NUMERIC,
    trades          BIGINT,
    taker_buy_base  NUMERIC,
    taker_buy_quote NUMERIC,
    close_time      TIMESTAMPTZ NOT NULL,
    source          TEXT        NOT NULL,
    ingested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, open_time),
    CHECK (high >= low)
);

-- Export and sync jobs find what changed since their watermark.
CREATE INDEX candles_ingested_at_idx ON candles (ingested_at);

CREATE TABLE job_runs (
    id          BIGSERIAL   PRIMARY KEY,
    job         TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    status      TEXT        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped', 'cancelled')),
    rows        BIGINT      NOT NULL DEFAULT 0,
    detail      TEXT,
    error       TEXT
);
CREATE INDEX job_runs_job_started_idx ON job_runs (job, started_at DESC);

CREATE TABLE watermarks (
    job        TEXT        NOT NULL,
    symbol     TEXT        NOT NULL,
    interval   TEXT        NOT NULL,
    position   TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job, symbol, interval)
);

-- Ranges the exchange itself has no candles for: recorded once, never re-fetched.
CREATE TABLE exchange_gaps (
    symbol      TEXT        NOT NULL,
    interval    TEXT        NOT NULL,
    gap_start   TIMESTAMPTZ NOT NULL,
    gap_end     TIMESTAMPTZ NOT NULL,
    detected_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, gap_start)
);

-- The seed app's table, as a view over the finest BTCUSDT interval stored.
CREATE VIEW bitcoin_prices AS
WITH finest AS (
    SELECT i.interval
    FROM (VALUES ('1s', 1), ('1m', 60), ('3m', 180), ('5m', 300), ('15m', 900), ('30m', 1800),
                 ('1h', 3600), ('2h', 7200), ('4h', 14400), ('6h', 21600), ('8h', 28800),
                 ('12h', 43200), ('1d', 86400), ('3d', 259200), ('1w', 604800), ('1M', 2592000))
         AS i(interval, seconds)
    WHERE EXISTS (SELECT 1 FROM candles c WHERE c.symbol = 'BTCUSDT' AND c.interval = i.interval)
    ORDER BY i.seconds
    LIMIT 1
)
SELECT (EXTRACT(EPOCH FROM c.open_time))::BIGINT AS id,
       c.close                                   AS price,
       c.open_time                               AS "timestamp",
       c.source                                  AS source,
       c.ingested_at                             AS created_at
FROM candles c
JOIN finest f ON c.interval = f.interval
WHERE c.symbol = 'BTCUSDT';
