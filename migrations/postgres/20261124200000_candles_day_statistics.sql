-- The export plans its work per UTC day: `GROUP BY (open_time AT TIME ZONE 'UTC')::date`.
-- Without statistics on that expression the planner guesses one group per candle and sorts
-- every candle (on disk beyond work_mem); with them it knows there are about as many groups as
-- days and aggregates them in memory, in parallel. ANALYZE (sampled, so quick on any size) fills
-- them now; autovacuum keeps them current.
CREATE STATISTICS IF NOT EXISTS candles_open_day ON ((open_time AT TIME ZONE 'UTC')::date) FROM candles;
ANALYZE candles;
