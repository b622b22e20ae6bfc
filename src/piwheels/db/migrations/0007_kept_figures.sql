-- Big Brother's figures kept, not counted (issue #5). Every minute statistics() counted the
-- packages and versions on PyPI, every build and file, and the files' bytes: at PyPI's scale
-- (1,000,000 packages, 8,000,000 versions, 5,000,000 builds and files) 4.6 s of PostgreSQL's
-- CPU a minute (GETSTATS in bench_gazer's Oracle accounts), taken from Cloud Gazer and the
-- Oracles on a 2-core machine.
--
-- Kept as migration 0004 keeps the queue's lengths: a total per figure plus a journal of
-- changes. Every statement that changes a counted table appends its net change to the journal
-- (statement triggers, so a cascade deleting a project's thousands of builds makes one row per
-- figure), and farm_figures() folds the journal into the totals when asked. Nothing but the
-- fold (and a TRUNCATE) updates a total, so Oracles recording builds at once never wait for,
-- or deadlock over, a shared counter row. Triggers rather than the writing functions, because
-- rows also go by ON DELETE CASCADE and by an operator's hand.
CREATE TABLE farm_totals (
    figure varchar(20) PRIMARY KEY,  -- packages, versions, builds, builds_succeeded, files, bytes
    total  bigint      NOT NULL
);
CREATE TABLE farm_journal (
    figure varchar(20) NOT NULL,
    delta  bigint      NOT NULL
);

-- Each table's function is used by its INSERT, UPDATE and DELETE triggers: an INSERT has only
-- rows added, a DELETE only rows removed, an UPDATE both (its old rows removed, its new added).
-- Only changes that are not zero are written: most UPDATEs of packages and versions (a new
-- summary, a yanked version, a file count) change no figure.

-- Packages and versions PyPI no longer lists stay on record, marked removed, and are not
-- counted; set_projects brings them back. One function for both tables: its argument names
-- the figure.
CREATE FUNCTION listed_figures() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    delta bigint := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        delta := delta + (SELECT count(*) FROM added WHERE NOT removed);
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        delta := delta - (SELECT count(*) FROM removed WHERE NOT removed);
    END IF;
    IF delta <> 0 THEN
        INSERT INTO farm_journal (figure, delta) VALUES (TG_ARGV[0], delta);
    END IF;
    RETURN NULL;
END;
$$;

-- No function changes a build's status today; an UPDATE that did is counted all the same.
CREATE FUNCTION builds_figures() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n bigint := 0;
    succeeded bigint := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT n + count(*), succeeded + count(*) FILTER (WHERE status)
        INTO n, succeeded FROM added;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT n - count(*), succeeded - count(*) FILTER (WHERE status)
        INTO n, succeeded FROM removed;
    END IF;
    INSERT INTO farm_journal (figure, delta)
    SELECT d.figure, d.delta FROM (VALUES ('builds', n), ('builds_succeeded', succeeded)) AS
        d(figure, delta)
    WHERE d.delta <> 0;
    RETURN NULL;
END;
$$;

CREATE FUNCTION files_figures() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    n bigint := 0;
    size_of bigint := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT n + count(*), size_of + coalesce(sum(filesize), 0) INTO n, size_of FROM added;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT n - count(*), size_of - coalesce(sum(filesize), 0) INTO n, size_of FROM removed;
    END IF;
    INSERT INTO farm_journal (figure, delta)
    SELECT d.figure, d.delta FROM (VALUES ('files', n), ('bytes', size_of)) AS d(figure, delta)
    WHERE d.delta <> 0;
    RETURN NULL;
END;
$$;

-- TRUNCATE fires no DELETE trigger: the table's figures (the trigger's arguments) start again
-- from nothing. Its lock has already kept out every writer of the table, so no journal row of
-- theirs is pending.
CREATE FUNCTION farm_figures_emptied() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    DELETE FROM farm_journal WHERE figure = ANY(TG_ARGV);
    UPDATE farm_totals SET total = 0 WHERE figure = ANY(TG_ARGV);
    RETURN NULL;
END;
$$;

CREATE TRIGGER packages_added AFTER INSERT ON packages
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION listed_figures('packages');
CREATE TRIGGER packages_removed AFTER DELETE ON packages
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION listed_figures('packages');
CREATE TRIGGER packages_changed AFTER UPDATE ON packages
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION listed_figures('packages');
CREATE TRIGGER packages_emptied AFTER TRUNCATE ON packages
    FOR EACH STATEMENT EXECUTE FUNCTION farm_figures_emptied('packages');

CREATE TRIGGER versions_added AFTER INSERT ON versions
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION listed_figures('versions');
CREATE TRIGGER versions_removed AFTER DELETE ON versions
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION listed_figures('versions');
CREATE TRIGGER versions_changed AFTER UPDATE ON versions
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION listed_figures('versions');
CREATE TRIGGER versions_emptied AFTER TRUNCATE ON versions
    FOR EACH STATEMENT EXECUTE FUNCTION farm_figures_emptied('versions');

CREATE TRIGGER builds_added AFTER INSERT ON builds
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION builds_figures();
CREATE TRIGGER builds_removed AFTER DELETE ON builds
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION builds_figures();
CREATE TRIGGER builds_changed AFTER UPDATE ON builds
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION builds_figures();
CREATE TRIGGER builds_emptied AFTER TRUNCATE ON builds
    FOR EACH STATEMENT EXECUTE FUNCTION farm_figures_emptied('builds', 'builds_succeeded');

CREATE TRIGGER files_added AFTER INSERT ON files
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION files_figures();
CREATE TRIGGER files_removed AFTER DELETE ON files
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION files_figures();
CREATE TRIGGER files_changed AFTER UPDATE ON files
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION files_figures();
CREATE TRIGGER files_emptied AFTER TRUNCATE ON files
    FOR EACH STATEMENT EXECUTE FUNCTION farm_figures_emptied('files', 'bytes');

-- Counted once, here, after the triggers: creating them locked out every writer of these
-- tables until this migration commits, so no change falls between the count and the journal.
INSERT INTO farm_totals (figure, total)
SELECT 'packages', count(*) FROM packages WHERE NOT removed
UNION ALL SELECT 'versions', count(*) FROM versions WHERE NOT removed
UNION ALL SELECT 'builds', count(*) FROM builds
UNION ALL SELECT 'builds_succeeded', count(*) FROM builds WHERE status
UNION ALL SELECT 'files', count(*) FROM files
UNION ALL SELECT 'bytes', coalesce(sum(filesize), 0) FROM files;

-- Each figure as it stands now.
CREATE FUNCTION farm_figures() RETURNS TABLE (figure varchar, total bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    -- As queue_lengths(): takes (and deletes) only journal rows already committed; any
    -- committed meanwhile stay for the next call, and of two calls at once the second skips
    -- the rows the first took. Totals are updated in one order, so two calls never deadlock.
    WITH taken AS (
        DELETE FROM farm_journal RETURNING farm_journal.figure, delta
    )
    INSERT INTO farm_totals AS t (figure, total)
    SELECT j.figure, sum(j.delta) FROM taken j GROUP BY j.figure ORDER BY j.figure
    ON CONFLICT ON CONSTRAINT farm_totals_pkey
    DO UPDATE SET total = t.total + excluded.total;
    RETURN QUERY SELECT t.figure, t.total FROM farm_totals t ORDER BY t.figure;
END;
$$;
