-- Each version of a batch written once (#20's "10,000 changes applied").
--
-- record_projects (0020) called set_projects (0010), then set_yank_reasons (0014) and set_sdists
-- (0015), each reading the batch's versions again and joining them to their rows: timed function
-- by function on bench_gazer's synthetic PyPI, 0.10 and 0.12 ms of a project's ~1.1 ms, most of
-- it with nothing to write, and a new version written twice (its row, then its sdist). Now the
-- upsert of set_projects compares and writes a version's yank reason and sdist with the rest.
--
-- And the versions whose entries may change are queued again by one statement for the batch
-- (queue_versions), where queue_version (0018) took two per version, each firing the queue's
-- statement triggers. queue_version now asks queue_versions, so the queue's rules are in one
-- place.

CREATE FUNCTION queue_versions(vids bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF vids IS NULL OR cardinality(vids) = 0 THEN
        RETURN;
    END IF;
    DELETE FROM build_queue WHERE version_id = ANY(vids);
    -- each version's entry as queue_version (0018) makes it: its lowest ABI still to build
    INSERT INTO build_queue (version_id, abi_tag, released, tier, rank, popularity)
    SELECT DISTINCT ON (v.version_id)
           v.version_id, a.abi_tag, coalesce(v.released, '-infinity'),
           queue_tier(v.priority, p.priority, v.rank), coalesce(v.rank, 2147483647), p.popularity
    FROM versions v
    JOIN packages p USING (package)
    CROSS JOIN build_abis a
    WHERE v.version_id = ANY(vids)
      AND v.has_sdist AND NOT v.yanked AND NOT v.removed AND v.skip = ''
      AND p.skip = '' AND NOT p.removed AND p.status <> 'quarantined'
      AND NOT EXISTS (
          SELECT 1 FROM version_abi_skips s
          WHERE s.version_id = v.version_id AND s.abi_tag = a.abi_tag)
      AND NOT EXISTS (
          SELECT 1 FROM builds b
          WHERE b.version_id = v.version_id AND b.requeued_at IS NULL
            AND (b.abi_tag = a.abi_tag OR (b.status AND b.covers_from <= a.python_order)))
    ORDER BY v.version_id, a.python_order;
END;
$$;

-- One version's entry: the same rules, written once (queue_version's other callers, 0018 on).
CREATE OR REPLACE FUNCTION queue_version(vid bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM queue_versions(ARRAY[vid]);
END;
$$;

-- batch: as set_projects (0010) takes it; each version may carry yanked_reason (kept only for a
-- yanked version, as before), sdist_url and sdist_sha256.
CREATE OR REPLACE FUNCTION set_projects(batch jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    pkgs text[];
    came_back text[];
    gone bigint[];
    changed bigint[];
    reskipped bigint[];
    reranked text[];
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
    -- (and so writes) every row it meets, even one its WHERE then leaves alone. A version whose
    -- yank reason or sdist alone changed is written, but is not `changed`: nothing about its
    -- builds, skips or place in the queue depends on those.
    WITH incoming AS (
        SELECT x.package, y.version, y.released, y.requires_python, y.has_sdist, y.yanked,
               y.skip, y.version_order, coalesce(y.prerelease, false) AS prerelease,
               left(nullif(y.yanked_reason, ''), 1000) AS yanked_reason,
               left(coalesce(y.sdist_url, ''), 2000) AS sdist_url,
               left(coalesce(y.sdist_sha256, ''), 64) AS sdist_sha256
        FROM jsonb_to_recordset(batch) AS x(package text, versions jsonb)
        CROSS JOIN LATERAL jsonb_to_recordset(x.versions) AS y(
            version text, released timestamptz, requires_python text, has_sdist boolean,
            yanked boolean, skip text, version_order integer, prerelease boolean,
            yanked_reason text, sdist_url text, sdist_sha256 text)
    ), compared AS (
        SELECT i.*,
               v.version_id IS NULL
               OR (v.released, v.requires_python, v.has_sdist, v.yanked, v.removed, v.skip,
                   v.version_order, v.prerelease)
                  IS DISTINCT FROM
                  (i.released, i.requires_python, i.has_sdist, i.yanked, false,
                   CASE WHEN v.skip <> '' AND i.skip = '' THEN v.skip ELSE i.skip END,
                   i.version_order, i.prerelease) AS builds_differ,
               (v.yanked_reason, v.sdist_url, v.sdist_sha256)
                  IS DISTINCT FROM (i.yanked_reason, i.sdist_url, i.sdist_sha256) AS files_differ
        FROM incoming i
        LEFT JOIN versions v ON v.package = i.package AND v.version = i.version
    ), differing AS (
        SELECT * FROM compared WHERE builds_differ OR files_differ
    ), u AS (
        INSERT INTO versions AS v (package, version, released, requires_python, has_sdist,
                                   yanked, skip, version_order, prerelease, yanked_reason,
                                   sdist_url, sdist_sha256)
        SELECT d.package, d.version, d.released, d.requires_python, d.has_sdist, d.yanked,
               d.skip, d.version_order, d.prerelease, d.yanked_reason, d.sdist_url,
               d.sdist_sha256
        FROM differing d
        ON CONFLICT (package, version) DO UPDATE SET
            released = excluded.released, requires_python = excluded.requires_python,
            has_sdist = excluded.has_sdist, yanked = excluded.yanked, removed = false,
            -- an operator's skip outlives PyPI updates; the follower's own reasons do not
            skip = CASE WHEN v.skip <> '' AND excluded.skip = '' THEN v.skip
                        ELSE excluded.skip END,
            version_order = excluded.version_order, prerelease = excluded.prerelease,
            yanked_reason = excluded.yanked_reason, sdist_url = excluded.sdist_url,
            sdist_sha256 = excluded.sdist_sha256
        RETURNING v.version_id, v.package, v.version
    )
    SELECT array_agg(u.version_id) INTO changed
    FROM u JOIN differing d ON d.package = u.package AND d.version = u.version
    WHERE d.builds_differ;

    -- skips: as migration 0005 (only versions just written or gone can differ)
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

        -- a version new, changed or gone can move every other version of its project
        SELECT rank_versions(array_agg(DISTINCT v.package)) INTO reranked
        FROM versions v
        WHERE v.version_id = ANY(coalesce(gone, '{}') || coalesce(changed, '{}'));
    END IF;

    PERFORM queue_versions(ARRAY(
        SELECT unnest(coalesce(gone, '{}') || coalesce(changed, '{}') || coalesce(reskipped, '{}'))
        UNION
        SELECT v.version_id FROM versions v WHERE v.package = ANY(came_back)
    ));
    PERFORM reorder_queue(reranked);
END;
$$;


CREATE OR REPLACE FUNCTION record_projects(batch jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM set_projects(batch);
    PERFORM set_project_statuses(batch);
END;
$$;

DROP FUNCTION set_yank_reasons(jsonb);
DROP FUNCTION set_sdists(jsonb);
