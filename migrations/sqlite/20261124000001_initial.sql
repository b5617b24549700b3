-- SQLite mirror of the PostgreSQL schema: times are INTEGER milliseconds since the epoch (UTC),
-- prices and volumes are TEXT holding the exact decimal as Binance sent it.

CREATE TABLE candles (
    symbol          TEXT    NOT NULL,
    interval        TEXT    NOT NULL,
    open_time       INTEGER NOT NULL,
    open            TEXT    NOT NULL,
    high            TEXT    NOT NULL,
    low             TEXT    NOT NULL,
    close           TEXT    NOT NULL,
    volume          TEXT    NOT NULL,
    quote_volume    TEXT,
    trades          INTEGER,
    taker_buy_base  TEXT,
    taker_buy_quote TEXT,
    close_time      INTEGER NOT NULL,
    source          TEXT    NOT NULL,
    ingested_at     INTEGER NOT NULL,
    PRIMARY KEY (symbol, interval, open_time)
) WITHOUT ROWID;

CREATE INDEX candles_ingested_at_idx ON candles (ingested_at);

CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job         TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    status      TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped', 'cancelled')),
    rows        INTEGER NOT NULL DEFAULT 0,
    detail      TEXT,
    error       TEXT
);
CREATE INDEX job_runs_job_started_idx ON job_runs (job, started_at DESC);

CREATE TABLE watermarks (
    job        TEXT    NOT NULL,
    symbol     TEXT    NOT NULL,
    interval   TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (job, symbol, interval)
);

CREATE TABLE exchange_gaps (
    symbol      TEXT    NOT NULL,
    interval    TEXT    NOT NULL,
    gap_start   INTEGER NOT NULL,
    gap_end     INTEGER NOT NULL,
    detected_at INTEGER NOT NULL,
    PRIMARY KEY (symbol, interval, gap_start)
);

CREATE VIEW bitcoin_prices AS
WITH finest AS (
    SELECT i.interval
    FROM (SELECT '1s' AS interval, 1 AS seconds UNION ALL SELECT '1m', 60 UNION ALL SELECT '3m', 180
          UNION ALL SELECT '5m', 300 UNION ALL SELECT '15m', 900 UNION ALL SELECT '30m', 1800
          UNION ALL SELECT '1h', 3600 UNION ALL SELECT '2h', 7200 UNION ALL SELECT '4h', 14400
          UNION ALL SELECT '6h', 21600 UNION ALL SELECT '8h', 28800 UNION ALL SELECT '12h', 43200
          UNION ALL SELECT '1d', 86400 UNION ALL SELECT '3d', 259200 UNION ALL SELECT '1w', 604800
          UNION ALL SELECT '1M', 2592000) AS i
    WHERE EXISTS (SELECT 1 FROM candles c WHERE c.symbol = 'BTCUSDT' AND c.interval = i.interval)
    ORDER BY i.seconds
    LIMIT 1
)
SELECT c.open_time / 1000                                                AS id,
       c.close                                                          AS price,
       strftime('%Y-%m-%dT%H:%M:%fZ', c.open_time / 1000.0, 'unixepoch') AS "timestamp",
       c.source                                                         AS source,
       strftime('%Y-%m-%dT%H:%M:%fZ', c.ingested_at / 1000.0, 'unixepoch') AS created_at
FROM candles c
JOIN finest f ON c.interval = f.interval
WHERE c.symbol = 'BTCUSDT';
