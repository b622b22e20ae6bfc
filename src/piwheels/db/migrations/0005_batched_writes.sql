-- Cheaper writes for following PyPI and recording builds (issue #5). Figures from a synthetic
-- PyPI (1,000,000 packages, 8,000,000 versions) on a shared 2-core machine, one connection.


-- 1. queue_version in PL/pgSQL: set_project 3.0 -> 1.9 ms per project.
--
-- A LANGUAGE sql function called with PERFORM is planned again at every call; PL/pgSQL keeps
-- its statements' plans for the session. Every build recorded and every version changed calls
-- this, so the planning was a third of set_project's cost and a large part of log_build's.
CREATE OR REPLACE FUNCTION queue_version(vid bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    DELETE FROM build_queue WHERE version_id = vid;
    INSERT INTO build_queue (version_id, abi_tag, released)
    SELECT v.version_id, a.abi_tag, v.released
    FROM versions v
    JOIN packages p USING (package)
    CROSS JOIN build_abis a
    WHERE v.version_id = vid
      AND v.has_sdist AND NOT v.yanked AND NOT v.removed AND v.skip = ''
      AND p.skip = '' AND NOT p.removed
      AND NOT EXISTS (
          SELECT 1 FROM version_abi_skips s
          WHERE s.version_id = vid AND s.abi_tag = a.abi_tag)
      AND NOT EXISTS (
          SELECT 1 FROM builds b
          WHERE b.version_id = vid
            AND (b.abi_tag = a.abi_tag OR (b.status AND b.covers_from <= a.python_order)))
    ORDER BY a.python_order
    LIMIT 1;
END;
$$;


-- 2. set_projects(): many projects in one call, each statement once for all of them.
--
-- Cloud Gazer records a burst of PyPI's changes 32 projects at a time. Called once per
-- project, each statement of set_project ran (and crossed the connection) 32 times; here each
-- runs once over the whole batch. The rules are set_project's of migration 0004, unchanged:
-- only versions new, changed, gone from PyPI or whose skips changed are written and requeued,
-- and every version of a project that comes back after being removed. A batch naming one
-- project twice is refused whole (ON CONFLICT cannot update a row twice): the caller then
-- records its projects one by one.
--
-- batch: [{package, display_name, serial, summary, description, versions: [{version, released,
-- requires_python, has_sdist, yanked, skip, abi_skips: [[abi, reason]]}]}]
CREATE FUNCTION set_projects(batch jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    pkgs text[];
    came_back text[];
    gone bigint[];
    changed bigint[];
    reskipped bigint[];
    vid bigint;
BEGIN
    SELECT array_agg(x.package) INTO pkgs FROM jsonb_to_recordset(batch) AS x(package text);
    SELECT array_agg(p.package) INTO came_back
    FROM packages p WHERE p.package = ANY(pkgs) AND p.removed;

    INSERT INTO packages AS p (package, display_name, serial, summary, description)
    SELECT x.package, x.display_name, x.serial, x.summary, x.description
    FROM jsonb_to_recordset(batch) AS x(
        package text, display_name text, serial bigint, summary text, description text)
    ON CONFLICT (package) DO UPDATE SET
        display_name = excluded.display_name, serial = excluded.serial,
        summary = excluded.summary, description = excluded.description, removed = false;

    WITH incoming AS (
        SELECT x.package, y.version
        FROM jsonb_to_recordset(batch) AS x(package text, versions jsonb)
        CROSS JOIN LATERAL jsonb_to_recordset(x.versions) AS y(version text)
    ), g AS (
        UPDATE versions v SET removed = true
        WHERE v.package = ANY(pkgs) AND NOT v.removed
          AND NOT EXISTS (
              SELECT 1 FROM incoming i WHERE i.package = v.package AND i.version = v.version)
        RETURNING v.version_id
    )
    SELECT array_agg(version_id) INTO gone FROM g;

    -- Only versions new or different from the record reach the upsert: ON CONFLICT locks
    -- (and so writes) every row it meets, even one its WHERE then leaves alone.
    WITH incoming AS (
        SELECT x.package, y.version, y.released, y.requires_python, y.has_sdist, y.yanked,
               y.skip
        FROM jsonb_to_recordset(batch) AS x(package text, versions jsonb)
        CROSS JOIN LATERAL jsonb_to_recordset(x.versions) AS y(
            version text, released timestamptz, requires_python text, has_sdist boolean,
            yanked boolean, skip text)
    ), differing AS (
        SELECT i.* FROM incoming i
        LEFT JOIN versions v ON v.package = i.package AND v.version = i.version
        WHERE v.version_id IS NULL
           OR (v.released, v.requires_python, v.has_sdist, v.yanked, v.removed, v.skip)
              IS DISTINCT FROM
              (i.released, i.requires_python, i.has_sdist, i.yanked, false,
               CASE WHEN v.skip <> '' AND i.skip = '' THEN v.skip ELSE i.skip END)
    ), u AS (
        INSERT INTO versions AS v (package, version, released, requires_python, has_sdist,
                                   yanked, skip)
        SELECT d.package, d.version, d.released, d.requires_python, d.has_sdist, d.yanked,
               d.skip
        FROM differing d
        ON CONFLICT (package, version) DO UPDATE SET
            released = excluded.released, requires_python = excluded.requires_python,
            has_sdist = excluded.has_sdist, yanked = excluded.yanked, removed = false,
            -- an operator's skip outlives PyPI updates; the follower's own reasons do not
            skip = CASE WHEN v.skip <> '' AND excluded.skip = '' THEN v.skip
                        ELSE excluded.skip END
        RETURNING v.version_id
    )
    SELECT array_agg(version_id) INTO changed FROM u;

    -- skips (the master's, from Requires-Python) that differ from those on record: the
    -- stale ones deleted, the new or changed ones written; a version no longer listed keeps
    -- none. They follow from Requires-Python and the farm's ABIs (set_build_abis redoes them
    -- all when those change), so only versions just written or gone can differ. The two
    -- parts touch different rows, so one statement does both.
    IF changed IS NOT NULL OR gone IS NOT NULL THEN
        WITH incoming AS (
            SELECT v.version_id, (sk.value ->> 0)::varchar AS abi_tag, sk.value ->> 1 AS reason
            FROM jsonb_to_recordset(batch) AS x(package text, versions jsonb)
            CROSS JOIN LATERAL jsonb_to_recordset(x.versions) AS y(version text, abi_skips jsonb)
            JOIN versions v ON v.package = x.package AND v.version = y.version
            CROSS JOIN LATERAL jsonb_array_elements(y.abi_skips) AS sk
            WHERE v.version_id = ANY(changed)
              AND sk.value ->> 0 IN (SELECT abi_tag FROM build_abis)
        ), recorded AS (
            SELECT s.version_id, s.abi_tag, s.reason FROM version_abi_skips s
            WHERE s.version_id = ANY(changed) OR s.version_id = ANY(gone)
        ), dropped AS (
            DELETE FROM version_abi_skips s USING recorded r
            WHERE s.version_id = r.version_id AND s.abi_tag = r.abi_tag
              AND NOT EXISTS (
                  SELECT 1 FROM incoming i
                  WHERE i.version_id = r.version_id AND i.abi_tag = r.abi_tag)
            RETURNING s.version_id
        ), written AS (
            INSERT INTO version_abi_skips AS s (version_id, abi_tag, reason)
            SELECT i.version_id, i.abi_tag, i.reason FROM incoming i
            WHERE NOT EXISTS (
                SELECT 1 FROM recorded r
                WHERE r.version_id = i.version_id AND r.abi_tag = i.abi_tag
                  AND r.reason = i.reason)
            ON CONFLICT (version_id, abi_tag) DO UPDATE SET reason = excluded.reason
            RETURNING s.version_id
        )
        SELECT array_agg(DISTINCT d.id) INTO reskipped FROM (
            SELECT version_id FROM dropped UNION ALL SELECT version_id FROM written
        ) AS d(id);
    END IF;

    FOR vid IN
        SELECT DISTINCT u.id FROM (
            SELECT unnest(coalesce(gone, '{}') || coalesce(changed, '{}')
                          || coalesce(reskipped, '{}'))
            UNION ALL
            SELECT v.version_id FROM versions v WHERE v.package = ANY(came_back)
        ) AS u(id)
    LOOP
        PERFORM queue_version(vid);
    END LOOP;
END;
$$;

-- One project is a batch of one: set_projects alone, so the two can never disagree.
DROP FUNCTION set_project(text, text, bigint, text, text, jsonb);
