-- PyPI's removals and PEP 792 project statuses (#20).
--
-- A release or a project PyPI removed, and a project it quarantines, stop being served once the
-- master's --removal-grace has passed (0: at once). Their files stay on record and leave the
-- served tree the way a cross-check's disagreement does (0016): files.withheld, and the File
-- Juggler's WITHHOLD and RELEASE. Each withheld file now says why (withheld_for), so that one
-- reason ending (PyPI lists the release again) leaves it withheld for another (a disagreement).
--
-- Three steps, so that a master killed between any two of them finds its work again:
--   1. the facts, recorded as PyPI says them (versions.removed and packages.removed, with the
--      time they were removed; packages.status) or as an operator decides (versions.kept);
--   2. withhold_for_pypi(grace), at every look at PyPI: the facts whose grace has passed become
--      reasons on the files (the *_applied flags say which facts it has applied), and the facts
--      that ended take their reasons away;
--   3. misplaced_files(): the files whose reasons and place on disk differ (moved_out), which
--      Cloud Gazer has the File Juggler move, and then records as moved (files_placed).
-- Only step 3 touches the disk, and a file stays misplaced in the database until its move is
-- recorded: one moved but not recorded is moved again (the moves are idempotent).
--
-- Cross-check disagreements keep their own path (the Slave Driver moves their files at once and
-- Mr. Chase moves them back); step 3 moves only the files withheld for PyPI's reasons.

ALTER TABLE packages
    -- PEP 792: what PyPI's simple API says of the project; a quarantined one is never built,
    -- and its files are withheld
    ADD COLUMN status varchar(20) NOT NULL DEFAULT 'active'
        CONSTRAINT packages_status_known
        CHECK (status IN ('active', 'archived', 'quarantined', 'deprecated')),
    ADD COLUMN status_reason varchar(1000),
    ADD COLUMN status_since timestamptz,  -- when it took its status; NULL: active from the start
    ADD COLUMN removed_at timestamptz,  -- when PyPI stopped listing it (NULL while listed)
    -- whether withhold_for_pypi has withheld its files for its removal, its quarantine
    ADD COLUMN removal_applied boolean NOT NULL DEFAULT false,
    ADD COLUMN quarantine_applied boolean NOT NULL DEFAULT false;

ALTER TABLE versions
    ADD COLUMN removed_at timestamptz,
    -- an operator published its files though PyPI removed it (piw-add --release); forgotten
    -- when PyPI lists it again, so a later removal withholds it again
    ADD COLUMN kept boolean NOT NULL DEFAULT false,
    ADD COLUMN removal_applied boolean NOT NULL DEFAULT false;

ALTER TABLE files
    ADD COLUMN withheld_for varchar(20)[] NOT NULL DEFAULT '{}'
        CONSTRAINT files_withheld_for_known
        CHECK (withheld_for <@ ARRAY['disagreement', 'removed', 'quarantined']::varchar(20)[]),
    -- out of the served tree for PyPI's reasons, as the File Juggler last reported (step 3)
    ADD COLUMN moved_out boolean NOT NULL DEFAULT false;

UPDATE files SET withheld_for = '{disagreement}' WHERE withheld;
-- the grace of what PyPI removed before this migration runs from now
UPDATE packages SET removed_at = now() WHERE removed;
UPDATE versions SET removed_at = now() WHERE removed;

-- What withhold_for_pypi and misplaced_files look for, found without reading whole tables:
-- each index holds only the rows with work to do (normally a few: the removals within their
-- grace; after this migration, every removal PyPI made before it, until the first look).
CREATE INDEX versions_withholding ON versions (removed_at)
    WHERE (removed AND NOT kept) <> removal_applied;
CREATE INDEX packages_withholding ON packages (package)
    WHERE removed <> removal_applied OR (status = 'quarantined') <> quarantine_applied;
CREATE INDEX files_misplaced ON files (filename)
    WHERE (withheld_for && ARRAY['removed', 'quarantined']::varchar(20)[]) <> moved_out;


-- A file's reasons to be withheld, given those it has (a disagreement stays until an operator
-- releases it) and the facts withhold_for_pypi has applied to its version and project. In a
-- fixed order, so that equal sets compare equal.
CREATE FUNCTION withheld_reasons(
    current varchar[], kept boolean, removed boolean, quarantined boolean
) RETURNS varchar[]
LANGUAGE sql IMMUTABLE SET search_path = public, pg_temp AS $$
    SELECT ARRAY(
        SELECT reason FROM (VALUES
            (1, 'disagreement', 'disagreement' = ANY(current)),
            (2, 'removed', removed AND NOT kept),
            (3, 'quarantined', quarantined)
        ) AS r(n, reason, holds)
        WHERE holds ORDER BY n
    )::varchar[];
$$;

-- files.withheld follows withheld_for; a file recorded for a version or project whose files are
-- withheld (a build that was under way when PyPI removed it) is withheld from the start.
CREATE FUNCTION files_withheld() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT withheld_reasons(NEW.withheld_for, v.kept, v.removal_applied OR p.removal_applied,
                                p.quarantine_applied)
        INTO NEW.withheld_for
        FROM builds b JOIN versions v USING (version_id) JOIN packages p USING (package)
        WHERE b.build_id = NEW.build_id;
        NEW.withheld_for := coalesce(NEW.withheld_for, '{}');
    END IF;
    NEW.withheld := cardinality(NEW.withheld_for) > 0;
    RETURN NEW;
END;
$$;
CREATE TRIGGER files_withheld BEFORE INSERT OR UPDATE OF withheld_for, withheld ON files
    FOR EACH ROW EXECUTE FUNCTION files_withheld();

-- When PyPI stopped listing a version or project, kept beside the flag set_projects and
-- remove_project already write (triggers, rather than new copies of those functions). A version
-- PyPI lists again loses an operator's keep: its next removal is withheld like any other.
CREATE FUNCTION version_removed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    NEW.removed_at := CASE WHEN NEW.removed THEN now() END;
    NEW.kept := NEW.kept AND NEW.removed;
    RETURN NEW;
END;
$$;
CREATE TRIGGER versions_removed_at BEFORE UPDATE OF removed ON versions
    FOR EACH ROW WHEN (OLD.removed IS DISTINCT FROM NEW.removed)
    EXECUTE FUNCTION version_removed();

CREATE FUNCTION package_removed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    NEW.removed_at := CASE WHEN NEW.removed THEN now() END;
    RETURN NEW;
END;
$$;
CREATE TRIGGER packages_removed_at BEFORE UPDATE OF removed ON packages
    FOR EACH ROW WHEN (OLD.removed IS DISTINCT FROM NEW.removed)
    EXECUTE FUNCTION package_removed();

-- A project PyPI lists again: the keeps its removal called for are forgotten (not those of
-- versions still removed themselves).
CREATE FUNCTION package_listed_again() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE versions SET kept = false WHERE package = NEW.package AND kept AND NOT removed;
    RETURN NULL;
END;
$$;
CREATE TRIGGER packages_listed_again AFTER UPDATE OF removed ON packages
    FOR EACH ROW WHEN (OLD.removed AND NOT NEW.removed)
    EXECUTE FUNCTION package_listed_again();


-- Statuses as Cloud Gazer reads them, beside set_projects (0010) as set_yank_reasons (0014) is:
-- batch as set_projects takes it, each project with project_status (one of the four; absent or
-- null: the index did not say, and the recorded status stands) and status_reason.
-- A project entering quarantine leaves the queue; one leaving it comes back to it.
CREATE FUNCTION set_project_statuses(batch jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    entered text[];
    lifted text[];
    vid bigint;
BEGIN
    WITH incoming AS (
        SELECT DISTINCT ON (x.package) x.package, x.project_status AS status,
               left(nullif(x.status_reason, ''), 1000) AS reason
        FROM jsonb_to_recordset(batch) AS x(package text, project_status text, status_reason text)
        WHERE x.project_status IN ('active', 'archived', 'quarantined', 'deprecated')
    ), changed AS (
        -- `before` is the row as it was: an UPDATE's FROM sees the table before the update
        UPDATE packages p
        SET status = i.status, status_reason = i.reason,
            status_since = CASE WHEN before.status = i.status THEN before.status_since
                                ELSE now() END
        FROM incoming i JOIN packages before USING (package)
        WHERE p.package = i.package
          AND (p.status, p.status_reason) IS DISTINCT FROM (i.status, i.reason)
        RETURNING p.package, before.status AS was, i.status AS now_is
    )
    SELECT array_agg(package) FILTER (WHERE now_is = 'quarantined' AND was <> 'quarantined'),
           array_agg(package) FILTER (WHERE was = 'quarantined' AND now_is <> 'quarantined')
    INTO entered, lifted
    FROM changed;
    IF entered IS NOT NULL THEN
        DELETE FROM build_queue q USING versions v
        WHERE q.version_id = v.version_id AND v.package = ANY(entered);
    END IF;
    FOR vid IN SELECT version_id FROM versions WHERE package = ANY(lifted) LOOP
        PERFORM queue_version(vid);
    END LOOP;
END;
$$;

-- A status alone, for a project whose details PyPI withholds (its JSON API answers 404 for a
-- quarantined project, while its simple page carries the status): the project is listed, so
-- no longer removed, and its serial (NULL: unknown) is the one the status was read at.
CREATE FUNCTION set_project_status(pkg text, new_serial bigint, new_status text, reason text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE packages SET serial = coalesce(new_serial, serial), removed = false
    WHERE package = pkg AND (serial, removed) IS DISTINCT FROM (coalesce(new_serial, serial), false);
    PERFORM set_project_statuses(jsonb_build_array(jsonb_build_object(
        'package', pkg, 'project_status', new_status, 'status_reason', reason)));
END;
$$;


-- queue_version() as in migration 0012, a quarantined project's versions never queued.
CREATE OR REPLACE FUNCTION queue_version(vid bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    DELETE FROM build_queue WHERE version_id = vid;
    INSERT INTO build_queue (version_id, abi_tag, released, tier, rank, popularity)
    SELECT v.version_id, a.abi_tag, coalesce(v.released, '-infinity'),
           queue_tier(v.priority, p.priority, v.rank), coalesce(v.rank, 2147483647), p.popularity
    FROM versions v
    JOIN packages p USING (package)
    CROSS JOIN build_abis a
    WHERE v.version_id = vid
      AND v.has_sdist AND NOT v.yanked AND NOT v.removed AND v.skip = ''
      AND p.skip = '' AND NOT p.removed AND p.status <> 'quarantined'
      AND NOT EXISTS (
          SELECT 1 FROM version_abi_skips s
          WHERE s.version_id = vid AND s.abi_tag = a.abi_tag)
      AND NOT EXISTS (
          SELECT 1 FROM builds b
          WHERE b.version_id = vid AND b.requeued_at IS NULL
            AND (b.abi_tag = a.abi_tag OR (b.status AND b.covers_from <= a.python_order)))
    ORDER BY a.python_order
    LIMIT 1;
END;
$$;

-- requeue_all() as in migration 0012, a quarantined project's versions never queued.
CREATE OR REPLACE FUNCTION requeue_all() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
SET enable_hashjoin = off SET enable_hashagg = off SET work_mem = '64MB' AS $$
DECLARE
    abi record;
    n integer := 0;
    bit_of_abi text := '';
    bits_covered text := '';
    lowest_free text := '';
BEGIN
    LOCK TABLE build_queue IN SHARE ROW EXCLUSIVE MODE;
    FOR abi IN SELECT abi_tag, python_order FROM build_abis ORDER BY python_order LOOP
        bit_of_abi := bit_of_abi || format(' WHEN %L THEN %s', abi.abi_tag, 1 << n);
        -- a wheel covering from this ABI's order blocks it and every ABI above it
        bits_covered := bits_covered
            || format(' WHEN b.covers_from <= %s THEN %s', abi.python_order, -(1 << n));
        lowest_free := lowest_free || format(' WHEN m & %s = 0 THEN %L', 1 << n, abi.abi_tag);
        n := n + 1;
    END LOOP;
    IF n = 0 THEN
        DELETE FROM build_queue;
        RETURN;
    END IF;
    IF to_regclass('pg_temp.requeue_changes') IS NOT NULL THEN
        DROP TABLE pg_temp.requeue_changes;  -- called twice in one transaction
    END IF;
    -- OFFSET 0 keeps each level's expressions from being inlined (and computed twice) above
    EXECUTE format($sql$
        CREATE TEMP TABLE requeue_changes ON COMMIT DROP AS
        SELECT version_id, wanted, released, tier, rank, popularity, queued FROM (
            SELECT version_id, released, tier, rank, popularity, queued, queued_place,
                   CASE WHEN eligible THEN CASE %s END END AS wanted
            FROM (
                SELECT v.version_id, coalesce(v.released, '-infinity') AS released,
                       queue_tier(v.priority, coalesce(x.priority, false), v.rank) AS tier,
                       coalesce(v.rank, 2147483647) AS rank,
                       coalesce(x.popularity, 0) AS popularity,
                       q.abi_tag AS queued,
                       ROW(q.released, q.tier, q.rank, q.popularity) AS queued_place,
                       coalesce(b.mask, 0) | coalesce(s.mask, 0) AS m,
                       v.has_sdist AND NOT v.yanked AND NOT v.removed AND v.skip = ''
                           AND NOT coalesce(x.excluded, false) AS eligible
                FROM versions v
                LEFT JOIN (
                    SELECT b.version_id,
                           bit_or(CASE b.abi_tag %s ELSE 0 END
                                  | CASE WHEN b.status THEN CASE %s ELSE 0 END ELSE 0 END)
                               AS mask
                    FROM builds b WHERE b.requeued_at IS NULL GROUP BY b.version_id
                ) AS b USING (version_id)
                LEFT JOIN (
                    SELECT s.version_id, bit_or(CASE s.abi_tag %s ELSE 0 END) AS mask
                    FROM version_abi_skips s GROUP BY s.version_id
                ) AS s USING (version_id)
                LEFT JOIN (
                    -- the versions of packages skipped, removed, quarantined, put first by an
                    -- operator or given a popularity: few, found apart
                    SELECT v.version_id,
                           p.skip <> '' OR p.removed OR p.status = 'quarantined' AS excluded,
                           p.priority, p.popularity
                    FROM packages p JOIN versions v USING (package)
                    WHERE p.skip <> '' OR p.removed OR p.status = 'quarantined' OR p.priority
                       OR p.popularity <> 0
                ) AS x USING (version_id)
                LEFT JOIN build_queue q USING (version_id)
                OFFSET 0
            ) AS t
            OFFSET 0
        ) AS w
        WHERE wanted IS DISTINCT FROM queued
           OR (wanted IS NOT NULL
               AND ROW(released, tier, rank, popularity) IS DISTINCT FROM queued_place)
    $sql$, lowest_free, bit_of_abi, bits_covered, bit_of_abi);
    ANALYZE requeue_changes;
    DELETE FROM build_queue q USING requeue_changes c
    WHERE q.version_id = c.version_id AND c.queued IS NOT NULL;
    -- in version order, so the foreign-key checks walk the versions' index in order too
    INSERT INTO build_queue (version_id, abi_tag, released, tier, rank, popularity)
    SELECT c.version_id, c.wanted, c.released, c.tier, c.rank, c.popularity
    FROM requeue_changes c
    WHERE c.wanted IS NOT NULL ORDER BY c.version_id;
END;
$$;


-- Step 2: apply the facts whose grace has passed, lift those that ended. Returns the projects
-- with files that it withheld or released as a whole (their removal or quarantine), the index
-- root and the search index then to list them no longer, or again: a thousand names at most
-- (after an upgrade, every project PyPI ever removed is applied in one go).
CREATE FUNCTION withhold_for_pypi(grace interval) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vids bigint[];
    pkgs text[];
BEGIN
    WITH changed AS (
        UPDATE versions v SET removal_applied = NOT v.removal_applied
        WHERE (v.removed AND NOT v.kept) <> v.removal_applied
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
        WHERE p.removed <> p.removal_applied
           OR (p.status = 'quarantined') <> p.quarantine_applied
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

-- Step 3: up to max_files files whose place differs from their reasons, by project: withhold
-- (true) those withheld for PyPI's reasons still in the served tree, release (false) those
-- moved out for them and no longer withheld. A file moved out for PyPI's reasons that is still
-- withheld for a disagreement alone stays where it is, and is no longer counted as moved out
-- (the disagreement's own path brings it back).
CREATE FUNCTION misplaced_files(max_files integer)
RETURNS TABLE (package text, filename text, withhold boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE files f SET moved_out = false
    WHERE (f.withheld_for && ARRAY['removed', 'quarantined']::varchar(20)[]) <> f.moved_out
      AND f.moved_out AND f.withheld;
    RETURN QUERY
        SELECT v.package::text, f.filename::text, NOT f.moved_out
        FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id)
        WHERE (f.withheld_for && ARRAY['removed', 'quarantined']::varchar(20)[]) <> f.moved_out
        ORDER BY 1, 2
        LIMIT max_files;
END;
$$;

-- The File Juggler moved *names* out of the served tree (moved true) or back: recorded, with
-- the need for their projects' pages (0009), which must no longer list them, or list them again.
CREATE FUNCTION files_placed(names text[], moved boolean) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE files SET moved_out = moved WHERE filename = ANY(names) AND moved_out <> moved;
    INSERT INTO pending_pages (kind, package)
    SELECT DISTINCT 'BOTH', v.package
    FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id)
    WHERE f.filename = ANY(names)
    ON CONFLICT (kind, package) DO UPDATE SET requests = pending_pages.requests + 1;
$$;


-- withhold_build() of migration 0016, by its reason: returns the files it takes out of the
-- served tree (those not withheld already, for PyPI's reasons).
CREATE OR REPLACE FUNCTION withhold_build(bid bigint) RETURNS SETOF text
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH marked AS (
        UPDATE files f SET withheld_for = '{disagreement}'::varchar(20)[] || f.withheld_for
        FROM files before
        WHERE f.build_id = bid AND before.filename = f.filename
          AND NOT 'disagreement' = ANY(f.withheld_for)
        RETURNING f.filename, before.withheld AS was
    )
    SELECT filename::text FROM marked WHERE NOT was;
$$;

-- release_withheld() of migration 0016: the operator's word that a version's wheels are to be
-- served, whatever its builders or PyPI's removal say. Releasing wheels withheld because PyPI
-- removed the version (or its project) keeps them served at the next look (versions.kept).
-- A quarantine is PyPI's word that the project is unsafe: its wheels come back only when PyPI
-- lifts it. Returns the files no longer withheld.
CREATE OR REPLACE FUNCTION release_withheld(pkg text, ver text) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id)
        WHERE v.package = pkg AND v.version = ver AND 'quarantined' = ANY(f.withheld_for)
    ) THEN
        RAISE EXCEPTION 'PyPI quarantines %: its wheels come back when PyPI lifts it', pkg;
    END IF;
    UPDATE versions v SET kept = true
    WHERE v.package = pkg AND v.version = ver AND NOT v.kept
      AND EXISTS (
          SELECT 1 FROM files f JOIN builds b USING (build_id)
          WHERE b.version_id = v.version_id AND 'removed' = ANY(f.withheld_for));
    RETURN QUERY
        WITH released AS (
            UPDATE files f
            SET withheld_for = array_remove(array_remove(f.withheld_for, 'disagreement'),
                                            'removed')
            FROM builds b JOIN versions v USING (version_id)
            WHERE f.build_id = b.build_id AND v.package = pkg AND v.version = ver
              AND f.withheld_for && ARRAY['disagreement', 'removed']::varchar(20)[]
            RETURNING f.filename, f.withheld
        )
        SELECT r.filename::text FROM released r WHERE NOT r.withheld;
END;
$$;
