-- The build queue's order: each project's newest release first, then the backlog interleaved
-- across projects, with an operator's priority in front of both (issue #14).
--
-- Run against real PyPI, ordering every ABI's queue by upload time across all projects spent
-- 92% of the build-seconds on older versions and pre-releases of projects that release often,
-- and never reached the newest release of quiet projects whose newest release is old: they
-- waited behind the whole history of the busy ones. What a farm's users want first is the
-- newest release of every project; the backlog comes after.
--
-- Each ABI's queue is read in the order (tier, rank, popularity DESC, released DESC):
--
--   tier 0  an operator's priority (set_priority: a version, or a project's every version)
--   tier 1  each project's newest release: rank 1
--   tier 2  the rest, by rank
--
-- A version's rank is its place in its own project, counting only the versions the farm can
-- build (an sdist, not yanked, not removed from PyPI, not skipped): its final releases first,
-- newest first, then its pre-releases, newest first. Rank 1 is a project's newest final
-- release, or its newest pre-release if it has no final release. Ordering the backlog by rank
-- interleaves the projects: the 2nd newest of every project before the 3rd newest of any, so
-- no project's history holds up another's. "Newest" is PEP 440's order, not upload time: a
-- backport (1.2.5 uploaded after 2.0) is not a project's newest release, and some versions have
-- no upload time at all (Cloud Gazer records them as seen now). The master works the order
-- out with `packaging` (versions.version_order, versions.prerelease: see project_row in
-- database.py); the schema only counts. A rank is the same on every ABI: a newest release
-- whose Requires-Python excludes an ABI leaves the project out of that ABI's tier 1, and its
-- next version waits at rank 2, the front of tier 2.
--
-- Ties of (tier, rank) go to the more popular project, then to the newest upload. Popularity is
-- a place kept for download counts (a later issue): 0 for every project until then, so today
-- ties go to the newest upload.
--
-- The queue stays a table kept current in the same transaction as a version or a build is
-- recorded, and is read by an index scan in exactly this order.


-- 1. What the order needs to know.
--
-- versions.version_order: the version's position in its project's versions in PEP 440 order
--   (0 = the oldest), among the versions PyPI lists; NULL for a version that is not PEP 440.
--   Only comparisons within a project mean anything.
-- versions.prerelease: PEP 440 says it is a pre-release (a, b, rc or dev).
-- versions.rank: see above; NULL for a version the farm cannot build. Kept by rank_versions()
--   whenever a project's buildable versions change.
-- versions.priority, packages.priority: an operator's (set_priority).
-- packages.popularity: the tie-breaker kept for download counts; 0 until they arrive.
ALTER TABLE versions
    ADD COLUMN version_order integer,
    ADD COLUMN prerelease    boolean NOT NULL DEFAULT false,
    ADD COLUMN rank          integer,
    ADD COLUMN priority      boolean NOT NULL DEFAULT false;
ALTER TABLE packages
    ADD COLUMN priority   boolean NOT NULL DEFAULT false,
    ADD COLUMN popularity bigint  NOT NULL DEFAULT 0;


-- 2. The versions recorded before this migration.
--
-- From now on the master sends each version's order and pre-release flag, worked out with
-- `packaging`. For the versions already on record, they are worked out here, once, with
-- packaging's own rules: its VERSION_PATTERN (the same regular expression, case-insensitive)
-- and its sort key (epoch, release without trailing zeros, pre-release, post-release, dev
-- release), as an array that sorts the same way. Local versions (+abc), which PyPI refuses,
-- compare equal to the public version. Cloud Gazer sends packaging's figures again at each
-- project's next change, and they replace these if they ever differ.
--
-- This rewrites every version, and section 4 every queue entry: at PyPI's scale (8,000,000
-- versions, 5,000,000 queued) about 7 and 3 minutes on a shared 2-core machine, in the
-- upgrade's one transaction (measured on a copy of bench/fill_db.py's synthetic PyPI).
CREATE FUNCTION pg_temp.pep440_key(ver text) RETURNS numeric[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    m text[];
    rel numeric[];
    pre_code numeric;
BEGIN
    -- groups: 1 epoch, 2 release, 3 pre letter, 4 pre number, 5 post number (1.0-1),
    -- 6 post letter, 7 post number, 8 dev, 9 dev number
    m := regexp_match(lower(ver),
        '^\s*v?(?:([0-9]+)!)?([0-9]+(?:\.[0-9]+)*)'
        '(?:[-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?([0-9]+)?)?'
        '(?:-([0-9]+)|[-_.]?(post|rev|r)[-_.]?([0-9]+)?)?'
        '(?:[-_.]?(dev)[-_.]?([0-9]+)?)?'
        '(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?\s*$');
    IF m IS NULL THEN
        RETURN NULL;
    END IF;
    rel := string_to_array(m[2], '.')::numeric[];
    WHILE cardinality(rel) > 0 AND rel[cardinality(rel)] = 0 LOOP
        rel := rel[1:cardinality(rel) - 1];
    END LOOP;
    pre_code := CASE
        -- a dev release of no pre- or post-release sorts before every pre-release of it
        WHEN m[3] IS NULL AND m[5] IS NULL AND m[6] IS NULL AND m[8] IS NOT NULL THEN 0
        WHEN m[3] IS NULL THEN 4
        WHEN m[3] IN ('a', 'alpha') THEN 1
        WHEN m[3] IN ('b', 'beta') THEN 2
        ELSE 3  -- c, rc, pre, preview
    END;
    -- -1 ends the release (every part of which is >= 0), so 1.0 < 1.0.1 < 1.1
    RETURN ARRAY[coalesce(m[1], '0')::numeric] || rel || ARRAY[
        -1,
        pre_code,
        coalesce(m[4], '0')::numeric,
        CASE WHEN m[5] IS NOT NULL THEN m[5]::numeric
             WHEN m[6] IS NOT NULL THEN coalesce(m[7], '0')::numeric
             ELSE -1 END,
        CASE WHEN m[8] IS NOT NULL THEN coalesce(m[9], '0')::numeric
             ELSE 'Infinity'::numeric END
    ];
END;
$$;

-- One pass over every version: its order among its project's listed versions, its flag, and its
-- rank among its project's buildable versions (the rules of rank_versions below).
UPDATE versions v
SET version_order = r.version_order, prerelease = r.prerelease, rank = r.rank
FROM (
    SELECT o.version_id, o.version_order, o.prerelease,
           CASE WHEN o.buildable THEN row_number() OVER (
               PARTITION BY o.package, o.buildable
               ORDER BY o.prerelease, o.version_order DESC NULLS LAST, o.version_id DESC)
           END AS rank
    FROM (
        SELECT k.version_id, k.package, k.buildable,
               CASE WHEN k.ordered THEN row_number() OVER (
                   PARTITION BY k.package, k.ordered ORDER BY k.key, k.version_id) - 1
               END AS version_order,
               -- key: [epoch, release..., -1, pre, pre number, post, dev]
               coalesce(k.key[cardinality(k.key) - 3] BETWEEN 1 AND 3
                        OR k.key[cardinality(k.key)] <> 'Infinity', false) AS prerelease
        FROM (
            SELECT version_id, package, key, key IS NOT NULL AND NOT removed AS ordered,
                   has_sdist AND NOT yanked AND NOT removed AND skip = '' AS buildable
            FROM (SELECT *, pg_temp.pep440_key(version) AS key FROM versions) AS kv
        ) AS k
    ) AS o
) AS r
WHERE v.version_id = r.version_id
  AND (r.version_order IS NOT NULL OR r.prerelease OR r.rank IS NOT NULL);

DROP FUNCTION pg_temp.pep440_key(text);


-- 3. A version's tier, in one place: an operator's priority, a project's newest release, the
-- rest. Plain SQL, neither SECURITY DEFINER nor SET, so that the planner inlines it.
CREATE FUNCTION queue_tier(version_priority boolean, package_priority boolean, version_rank integer)
RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN version_priority OR package_priority THEN 0
                 WHEN version_rank = 1 THEN 1
                 ELSE 2 END)::smallint;
$$;


-- 4. The queue: each entry's place, copied from its version and package (as released already
-- was) so that the order is one index.
ALTER TABLE build_queue
    ADD COLUMN tier       smallint NOT NULL DEFAULT 2,
    ADD COLUMN rank       integer  NOT NULL DEFAULT 2147483647,
    ADD COLUMN popularity bigint   NOT NULL DEFAULT 0;
UPDATE build_queue q
SET tier = queue_tier(v.priority, false, v.rank), rank = coalesce(v.rank, 2147483647)
FROM versions v
WHERE q.version_id = v.version_id;
ALTER TABLE build_queue ALTER COLUMN tier DROP DEFAULT, ALTER COLUMN rank DROP DEFAULT;

DROP INDEX build_queue_order;
CREATE INDEX build_queue_order
    ON build_queue (abi_tag, tier, rank, popularity DESC, released DESC);


-- 5. Ranks, kept current.
--
-- Recompute the ranks of *pkgs*' versions, writing only those that change; returns the packages
-- whose ranks changed (their queue entries then need reorder_queue). A new release of a project
-- moves every older version of it down one: the price of interleaving by rank.
CREATE FUNCTION rank_versions(pkgs text[]) RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    moved text[];
BEGIN
    WITH ranked AS (
        SELECT v.version_id,
               CASE WHEN e.buildable THEN row_number() OVER (
                   PARTITION BY v.package, e.buildable
                   ORDER BY v.prerelease, v.version_order DESC NULLS LAST, v.version_id DESC)
               END::integer AS rank
        FROM versions v
        CROSS JOIN LATERAL (
            SELECT v.has_sdist AND NOT v.yanked AND NOT v.removed AND v.skip = '' AS buildable
        ) AS e
        WHERE v.package = ANY(pkgs)
    ), changed AS (
        UPDATE versions v SET rank = r.rank
        FROM ranked r
        WHERE v.version_id = r.version_id AND v.rank IS DISTINCT FROM r.rank
        RETURNING v.package
    )
    SELECT array_agg(DISTINCT c.package) INTO moved FROM changed c;
    RETURN moved;
END;
$$;

-- Bring the place (tier, rank, popularity) of *pkgs*' queued versions up to date with their
-- versions and packages, writing only the entries that change.
CREATE FUNCTION reorder_queue(pkgs text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF pkgs IS NULL OR cardinality(pkgs) = 0 THEN
        RETURN;
    END IF;
    UPDATE build_queue q
    SET tier = n.tier, rank = n.rank, popularity = n.popularity
    FROM (
        SELECT v.version_id, queue_tier(v.priority, p.priority, v.rank) AS tier,
               coalesce(v.rank, 2147483647) AS rank, p.popularity
        FROM versions v JOIN packages p USING (package)
        WHERE v.package = ANY(pkgs)
    ) AS n
    WHERE q.version_id = n.version_id
      AND (q.tier, q.rank, q.popularity) IS DISTINCT FROM (n.tier, n.rank, n.popularity);
END;
$$;


-- 6. One version's entry, now with its place. rank is never NULL for a version that can be
-- queued (both follow the same rules); were it ever, the entry would go last rather than
-- make recording a build fail.
CREATE OR REPLACE FUNCTION queue_version(vid bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    DELETE FROM build_queue WHERE version_id = vid;
    INSERT INTO build_queue (version_id, abi_tag, released, tier, rank, popularity)
    SELECT v.version_id, a.abi_tag, v.released, queue_tier(v.priority, p.priority, v.rank),
           coalesce(v.rank, 2147483647), p.popularity
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


-- 7. requeue_all() as in migration 0004 (one pass in version order, only the entries that
-- differ written), each entry's place compared and written too. Package-level figures (an
-- operator's priority, popularity) come, like a package's skip, from the few packages that
-- have them, found apart and merged by version: joining every version to its package would
-- cost a sort of every version. (Once download counts give most packages a popularity, this
-- join is the thing to revisit.)
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
                SELECT v.version_id, v.released,
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
                    FROM builds b GROUP BY b.version_id
                ) AS b USING (version_id)
                LEFT JOIN (
                    SELECT s.version_id, bit_or(CASE s.abi_tag %s ELSE 0 END) AS mask
                    FROM version_abi_skips s GROUP BY s.version_id
                ) AS s USING (version_id)
                LEFT JOIN (
                    -- the versions of packages skipped, removed, put first by an operator or
                    -- given a popularity: few, found apart
                    SELECT v.version_id, p.skip <> '' OR p.removed AS excluded, p.priority,
                           p.popularity
                    FROM packages p JOIN versions v USING (package)
                    WHERE p.skip <> '' OR p.removed OR p.priority OR p.popularity <> 0
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


-- 8. set_projects() as in migration 0005, recording each version's order and pre-release flag
-- (version_order, prerelease: worked out by the master with packaging), then the ranks of the
-- projects whose versions changed, and the places of their queued versions.
--
-- batch: [{package, display_name, serial, summary, description, versions: [{version, released,
-- requires_python, has_sdist, yanked, skip, version_order, prerelease,
-- abi_skips: [[abi, reason]]}]}]
CREATE OR REPLACE FUNCTION set_projects(batch jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    pkgs text[];
    came_back text[];
    gone bigint[];
    changed bigint[];
    reskipped bigint[];
    reranked text[];
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
               y.skip, y.version_order, coalesce(y.prerelease, false) AS prerelease
        FROM jsonb_to_recordset(batch) AS x(package text, versions jsonb)
        CROSS JOIN LATERAL jsonb_to_recordset(x.versions) AS y(
            version text, released timestamptz, requires_python text, has_sdist boolean,
            yanked boolean, skip text, version_order integer, prerelease boolean)
    ), differing AS (
        SELECT i.* FROM incoming i
        LEFT JOIN versions v ON v.package = i.package AND v.version = i.version
        WHERE v.version_id IS NULL
           OR (v.released, v.requires_python, v.has_sdist, v.yanked, v.removed, v.skip,
               v.version_order, v.prerelease)
              IS DISTINCT FROM
              (i.released, i.requires_python, i.has_sdist, i.yanked, false,
               CASE WHEN v.skip <> '' AND i.skip = '' THEN v.skip ELSE i.skip END,
               i.version_order, i.prerelease)
    ), u AS (
        INSERT INTO versions AS v (package, version, released, requires_python, has_sdist,
                                   yanked, skip, version_order, prerelease)
        SELECT d.package, d.version, d.released, d.requires_python, d.has_sdist, d.yanked,
               d.skip, d.version_order, d.prerelease
        FROM differing d
        ON CONFLICT (package, version) DO UPDATE SET
            released = excluded.released, requires_python = excluded.requires_python,
            has_sdist = excluded.has_sdist, yanked = excluded.yanked, removed = false,
            -- an operator's skip outlives PyPI updates; the follower's own reasons do not
            skip = CASE WHEN v.skip <> '' AND excluded.skip = '' THEN v.skip
                        ELSE excluded.skip END,
            version_order = excluded.version_order, prerelease = excluded.prerelease
        RETURNING v.version_id
    )
    SELECT array_agg(version_id) INTO changed FROM u;

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
    PERFORM reorder_queue(reranked);
END;
$$;


-- 9. The operators' repairs of migrations 0003 and 0006 that change which versions of a
-- project can be built: each reranks the project too.
CREATE OR REPLACE FUNCTION remove_version(pkg text, ver text, reason text) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint := _version_id(pkg, ver);
    unpublished integer;
    reranked text[];
BEGIN
    RETURN QUERY
        DELETE FROM files f USING builds b
        WHERE f.build_id = b.build_id AND b.version_id = vid
        RETURNING f.filename::text;
    GET DIAGNOSTICS unpublished = ROW_COUNT;
    UPDATE packages SET files = files - unpublished WHERE package = pkg AND unpublished > 0;
    DELETE FROM builds WHERE version_id = vid;
    UPDATE versions SET skip = reason WHERE version_id = vid AND reason <> '';
    reranked := rank_versions(ARRAY[pkg]);
    PERFORM queue_version(vid);
    PERFORM reorder_queue(reranked);
END;
$$;

-- add_by_hand now takes the order of the package's versions, the new one among them, as the
-- master works it out with packaging: orders [{version, version_order, prerelease}].
DROP FUNCTION add_by_hand(text, text, text);
CREATE FUNCTION add_by_hand(pkg text, ver text, reason text, orders jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    reranked text[];
BEGIN
    INSERT INTO packages (package, display_name, skip) VALUES (pkg, pkg, coalesce(reason, ''))
    ON CONFLICT (package) DO NOTHING;
    IF ver IS NOT NULL THEN
        INSERT INTO versions (package, version, released, has_sdist, skip)
        VALUES (pkg, ver, now(), true, coalesce(reason, ''))
        ON CONFLICT (package, version) DO NOTHING;
        UPDATE versions v
        SET version_order = x.version_order, prerelease = coalesce(x.prerelease, false)
        FROM jsonb_to_recordset(orders) AS x(version text, version_order integer,
                                             prerelease boolean)
        WHERE v.package = pkg AND v.version = x.version
          AND (v.version_order, v.prerelease)
              IS DISTINCT FROM (x.version_order, coalesce(x.prerelease, false));
        reranked := rank_versions(ARRAY[pkg]);
        PERFORM queue_version(_version_id(pkg, ver));
        PERFORM reorder_queue(reranked);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION set_skip(pkg text, ver text, reason text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint;
    reranked text[];
BEGIN
    IF ver IS NULL THEN
        -- a project's skip leaves its versions' ranks as they are: it only empties the queue
        UPDATE packages SET skip = reason WHERE package = pkg;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no such package: %', pkg USING ERRCODE = 'no_data_found';
        END IF;
        FOR vid IN SELECT version_id FROM versions WHERE package = pkg LOOP
            PERFORM queue_version(vid);
        END LOOP;
    ELSE
        vid := _version_id(pkg, ver);
        UPDATE versions SET skip = reason WHERE version_id = vid;
        reranked := rank_versions(ARRAY[pkg]);
        PERFORM queue_version(vid);
        PERFORM reorder_queue(reranked);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION set_yanked(pkg text, ver text, is_yanked boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint := _version_id(pkg, ver);
    reranked text[];
BEGIN
    UPDATE versions SET yanked = is_yanked WHERE version_id = vid;
    reranked := rank_versions(ARRAY[pkg]);
    PERFORM queue_version(vid);
    PERFORM reorder_queue(reranked);
END;
$$;


-- 10. An operator's priority: put a version (ver) or a project's every version (ver NULL) in
-- tier 0, at the front of every ABI's queue it is in, or (wanted false) take it back. It stays
-- until taken back: a project's priority also puts its later releases first. Within tier 0 the
-- usual order holds (a project's newest first).
CREATE FUNCTION set_priority(pkg text, ver text, wanted boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF ver IS NULL THEN
        UPDATE packages SET priority = wanted WHERE package = pkg;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no such package: %', pkg USING ERRCODE = 'no_data_found';
        END IF;
    ELSE
        UPDATE versions SET priority = wanted WHERE version_id = _version_id(pkg, ver);
    END IF;
    PERFORM reorder_queue(ARRAY[pkg]);
END;
$$;
