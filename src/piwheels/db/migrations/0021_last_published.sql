-- When each project's newest file was recorded, kept beside the project.
--
-- At every start the Secretary asks which projects have files and when their newest was
-- recorded, and writes again any index older than that. Worked out from files, builds and
-- versions, at PyPI's scale (900,000 projects with files, 4.5 million files) that took an
-- Oracle 9-15 s, and its answer was too long for one message (the check was skipped with an
-- error). Kept by the files' own triggers, it is read in pages of the projects in name order.
ALTER TABLE packages ADD COLUMN last_file_at timestamptz;

UPDATE packages p SET last_file_at = n.newest
FROM (
    SELECT v.package, max(b.built_at) AS newest
    FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id)
    GROUP BY v.package
) AS n
WHERE p.package = n.package;

-- Files recorded: their projects' newest may be later. Files deleted (a version removed, a
-- build replaced): their projects' newest is worked out again from the files left, so that a
-- project with none is no longer listed, and its missing index not asked for at every start.
-- Every function that deletes files does so before their builds (0003, 0006, 0010), so the
-- builds are still there to say whose files they were.
CREATE FUNCTION files_last_published() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE packages p SET last_file_at = n.newest
        FROM (
            SELECT v.package, max(b.built_at) AS newest
            FROM added a JOIN builds b USING (build_id) JOIN versions v USING (version_id)
            GROUP BY v.package
        ) AS n
        WHERE p.package = n.package
          AND (p.last_file_at IS NULL OR p.last_file_at < n.newest);
    ELSE
        UPDATE packages p SET last_file_at = (
            SELECT max(b.built_at)
            FROM versions v JOIN builds b USING (version_id) JOIN files f USING (build_id)
            WHERE v.package = p.package
        )
        WHERE p.package IN (
            SELECT v.package
            FROM removed r JOIN builds b USING (build_id) JOIN versions v USING (version_id)
        );
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER files_published AFTER INSERT ON files
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION files_last_published();
CREATE TRIGGER files_unpublished AFTER DELETE ON files
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION files_last_published();
