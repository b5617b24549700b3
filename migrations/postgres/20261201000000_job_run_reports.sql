-- What each run did, item by item: the job's typed report as JSON. Nullable, so runs recorded
-- before it, and binaries that do not write it, keep working.
ALTER TABLE job_runs ADD COLUMN report JSONB;
