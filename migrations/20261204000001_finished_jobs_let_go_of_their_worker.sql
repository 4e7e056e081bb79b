-- A finished job no longer names the worker that ran it.
--
-- apalis-postgres records a job's result with a query that finds the job by
-- `lock_by = <worker>` (its queries/task/handle_result.sql), planned as a scan of every job that
-- worker ever ran, since a finished job kept its `lock_by`: 2.8 ms a result after 2,000 jobs,
-- growing for as long as the process lived. With the name cleared at the finish, that scan finds
-- only the jobs in hand. Nothing reads `lock_by` of a finished job; a failed job that runs again
-- is locked afresh by the fetch.

CREATE OR REPLACE FUNCTION apalis.unlock_finished_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.lock_by := NULL;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER unlock_finished_job BEFORE UPDATE OF status ON apalis.jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('Done', 'Failed', 'Killed') AND NEW.lock_by IS NOT NULL)
    EXECUTE FUNCTION apalis.unlock_finished_job();
