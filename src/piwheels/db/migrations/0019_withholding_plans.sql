-- What withhold_for_pypi and misplaced_files (0018) look for, found by their indexes at scale.
--
-- Each asks for the rows whose state differs from what was applied, as a comparison of two
-- booleans ("removed <> removal_applied"). PostgreSQL estimates any such comparison of two
-- columns at a third of the table, so at PyPI's scale (8 million versions, 4.5 million files)
-- it read whole tables at every look at PyPI, about once a minute: 1.2 s for versions, 0.6 s
-- for files, and misplaced_files walked every version in name order to find its batch (1-60 s).
-- The partial indexes of 0018 went unused.
--
-- Written "(comparison) IS TRUE", the test is estimated from statistics kept on the comparison
-- itself (CREATE STATISTICS on an expression), which see that next to no rows differ; the
-- partial indexes are made again with the same words, so that the planner can prove that a
-- query's rows are all in them. The batch of files to move is taken from its index first, then
-- joined to its projects and sorted, rather than found by walking the projects.

DROP INDEX versions_withholding;
DROP INDEX packages_withholding;
DROP INDEX files_misplaced;

CREATE INDEX versions_withholding ON versions (removed_at)
    WHERE ((removed AND NOT kept) <> removal_applied) IS TRUE;
CREATE INDEX packages_withholding ON packages (package)
    WHERE (removed <> removal_applied) IS TRUE
       OR ((status = 'quarantined') <> quarantine_applied) IS TRUE;
CREATE INDEX files_misplaced ON files (filename)
    WHERE ((withheld_for && ARRAY['removed', 'quarantined']::varchar(20)[]) <> moved_out) IS TRUE;

CREATE STATISTICS versions_withholding_stats
    ON ((removed AND NOT kept) <> removal_applied) FROM versions;
CREATE STATISTICS packages_withholding_stats
    ON (removed <> removal_applied), ((status = 'quarantined') <> quarantine_applied) FROM packages;
CREATE STATISTICS files_misplaced_stats
    ON ((withheld_for && ARRAY['removed', 'quarantined']::varchar(20)[]) <> moved_out) FROM files;

-- The statistics exist from now, not from autovacuum's next visit (a sample: seconds at most).
ANALYZE versions, packages, files;


-- withhold_for_pypi() of 0018, its tests as its indexes say them.
CREATE OR REPLACE FUNCTION withhold_for_pypi(grace interval) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vids bigint[];
    pkgs text[];
BEGIN
    WITH changed AS (
        UPDATE versions v SET removal_applied = NOT v.removal_applied
        WHERE ((v.removed AND NOT v.kept) <> v.removal_applied) IS TRUE
          AND (v.removal_applied OR coalesce(v.removed_at, '-infinity') <= now() - grace)
        RETURNING v.version_id
    )
    SELECT array_agg(version_id) INTO vids FROM changed;

    WITH wanted AS (
        SELECT p.package,
               p.removed AND (p.removal_applied
                              OR coalesce(p.removed_at, '-infinity') <= now() - grace) AS removal,
               p.status = 'quarantined'
                   AND (p.quarantine_applied
                        OR coalesce(p.status_since, '-infinity') <= now() - grace) AS quarantine
        FROM packages p
        WHERE (p.removed <> p.removal_applied) IS TRUE
           OR ((p.status = 'quarantined') <> p.quarantine_applied) IS TRUE
    ), changed AS (
        UPDATE packages p SET removal_applied = w.removal, quarantine_applied = w.quarantine
        FROM wanted w
        WHERE p.package = w.package
          AND (p.removal_applied, p.quarantine_applied) IS DISTINCT FROM (w.removal, w.quarantine)
        RETURNING p.package
    )
    SELECT array_agg(package) INTO pkgs FROM changed;

    -- the reasons of the files those changes concern (two statements, each by its own index)
    UPDATE files f
    SET withheld_for = withheld_reasons(f.withheld_for, v.kept,
                                        v.removal_applied OR p.removal_applied,
                                        p.quarantine_applied)
    FROM builds b JOIN versions v USING (version_id) JOIN packages p USING (package)
    WHERE f.build_id = b.build_id AND b.version_id = ANY(vids)
      AND f.withheld_for IS DISTINCT FROM withheld_reasons(
          f.withheld_for, v.kept, v.removal_applied OR p.removal_applied, p.quarantine_applied);
    UPDATE files f
    SET withheld_for = withheld_reasons(f.withheld_for, v.kept,
                                        v.removal_applied OR p.removal_applied,
                                        p.quarantine_applied)
    FROM builds b JOIN versions v USING (version_id) JOIN packages p USING (package)
    WHERE f.build_id = b.build_id AND v.package = ANY(pkgs)
      AND f.withheld_for IS DISTINCT FROM withheld_reasons(
          f.withheld_for, v.kept, v.removal_applied OR p.removal_applied, p.quarantine_applied);

    RETURN QUERY
        SELECT p.package::text FROM packages p
        WHERE p.package = ANY(pkgs) AND p.files > 0
        ORDER BY 1 LIMIT 1000;
END;
$$;

-- misplaced_files() of 0018: the files found by their index, then joined and sorted.
CREATE OR REPLACE FUNCTION misplaced_files(max_files integer)
RETURNS TABLE (package text, filename text, withhold boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE files f SET moved_out = false
    WHERE ((f.withheld_for && ARRAY['removed', 'quarantined']::varchar(20)[]) <> f.moved_out)
              IS TRUE
      AND f.moved_out AND f.withheld;
    RETURN QUERY
        WITH misplaced AS MATERIALIZED (
            SELECT f.build_id, f.filename, f.moved_out FROM files f
            WHERE ((f.withheld_for && ARRAY['removed', 'quarantined']::varchar(20)[])
                   <> f.moved_out) IS TRUE
        )
        SELECT v.package::text, m.filename::text, NOT m.moved_out
        FROM misplaced m JOIN builds b USING (build_id) JOIN versions v USING (version_id)
        ORDER BY 1, 2
        LIMIT max_files;
END;
$$;
