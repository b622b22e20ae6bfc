-- A batch of Cloud Gazer's projects recorded by one call: set_projects (0010) and what later
-- migrations record beside it (set_yank_reasons 0014, set_sdists 0015, set_project_statuses
-- 0018). Called one by one, each took the batch as text and parsed it into jsonb again: for
-- 32 projects with their READMEs, some 100 kB four times over, and four round trips.
CREATE FUNCTION record_projects(batch jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM set_projects(batch);
    PERFORM set_yank_reasons(batch);
    PERFORM set_sdists(batch);
    PERFORM set_project_statuses(batch);
END;
$$;
