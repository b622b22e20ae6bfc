-- Release times that PyPI does not know, and where a queued version stands (issue #14).
--
-- 1. A version with no files on PyPI has no upload time. Cloud Gazer recorded the moment it
--    first saw such a version instead, so pyyaml's 3.01-3.09 showed as released today, at the
--    top of its page. versions.released is now NULL when the time is unknown. The queue keeps
--    its order in one index: an entry's released is -infinity then, last among its equals
--    (the version's rank, from PEP 440's order, already puts it in its place in its project).
--    Versions recorded before this migration keep the time they were first seen until their
--    project next changes on PyPI; nothing here can tell a first-seen time from an upload.
--
-- 2. The queue's lengths (migration 0004) are kept per (ABI, tier, rank) rather than per ABI,
--    by the same statement triggers and journal. The home page shows each ABI's newest
--    releases waiting apart from its backlog, and a project page says roughly how far from the
--    front each queued version is: the entries of every (tier, rank) before its own, read from
--    these totals, plus those before it in its own (tier, rank), counted by index up to a cap
--    (see web_queries.queue_places). Versions of a project share no (tier, rank), and a
--    (tier, rank) is ordered by (popularity, released): at PyPI's scale the buckets number a
--    few thousand per ABI.


-- 1. Unknown release times.
ALTER TABLE versions ALTER COLUMN released DROP NOT NULL;

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

-- requeue_all() as in migration 0010, an unknown release time queued as -infinity.
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

-- add_by_hand() as in migration 0010: a version added by hand has no known release time.
CREATE OR REPLACE FUNCTION add_by_hand(pkg text, ver text, reason text, orders jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    reranked text[];
BEGIN
    INSERT INTO packages (package, display_name, skip) VALUES (pkg, pkg, coalesce(reason, ''))
    ON CONFLICT (package) DO NOTHING;
    IF ver IS NOT NULL THEN
        INSERT INTO versions (package, version, released, has_sdist, skip)
        VALUES (pkg, ver, NULL, true, coalesce(reason, ''))
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


-- 2. The queue's lengths per (ABI, tier, rank). The journal's rows not yet folded are folded
-- here first, then both tables start again from a count of the queue.
DELETE FROM build_queue_journal;
DROP TABLE build_queue_lengths;
CREATE TABLE build_queue_lengths (
    abi_tag varchar(100) NOT NULL,
    tier    smallint     NOT NULL,
    rank    integer      NOT NULL,
    length  bigint       NOT NULL,
    PRIMARY KEY (abi_tag, tier, rank)
);
ALTER TABLE build_queue_journal
    ADD COLUMN tier smallint NOT NULL DEFAULT 2,
    ADD COLUMN rank integer  NOT NULL DEFAULT 2147483647;
ALTER TABLE build_queue_journal ALTER COLUMN tier DROP DEFAULT, ALTER COLUMN rank DROP DEFAULT;
INSERT INTO build_queue_lengths (abi_tag, tier, rank, length)
SELECT abi_tag, tier, rank, count(*) FROM build_queue GROUP BY abi_tag, tier, rank;

CREATE OR REPLACE FUNCTION build_queue_journal_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO build_queue_journal (abi_tag, tier, rank, delta)
    SELECT abi_tag, tier, rank, count(*) FROM added GROUP BY abi_tag, tier, rank;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION build_queue_journal_removed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO build_queue_journal (abi_tag, tier, rank, delta)
    SELECT abi_tag, tier, rank, -count(*) FROM removed GROUP BY abi_tag, tier, rank;
    RETURN NULL;
END;
$$;

-- reorder_queue's updates move entries between (tier, rank)s without leaving the queue
CREATE OR REPLACE FUNCTION build_queue_journal_moved() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO build_queue_journal (abi_tag, tier, rank, delta)
    SELECT abi_tag, tier, rank, sum(delta) FROM (
        SELECT abi_tag, tier, rank, 1 AS delta FROM added
        UNION ALL
        SELECT abi_tag, tier, rank, -1 FROM removed
    ) AS d GROUP BY abi_tag, tier, rank HAVING sum(delta) <> 0;
    RETURN NULL;
END;
$$;

-- Fold the journal's committed rows into the totals (as migration 0004's queue_lengths did:
-- any committed meanwhile stay for the next call; of two calls at once, the second skips the
-- rows the first took). Totals that reach 0 go, so the table holds only the buckets in use.
CREATE FUNCTION fold_queue_journal() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    WITH taken AS (
        DELETE FROM build_queue_journal j RETURNING j.abi_tag, j.tier, j.rank, j.delta
    )
    INSERT INTO build_queue_lengths AS l (abi_tag, tier, rank, length)
    SELECT t.abi_tag, t.tier, t.rank, sum(t.delta) FROM taken t
    GROUP BY t.abi_tag, t.tier, t.rank
    ON CONFLICT ON CONSTRAINT build_queue_lengths_pkey
    DO UPDATE SET length = l.length + excluded.length;
    DELETE FROM build_queue_lengths WHERE length = 0;
END;
$$;

-- Each of the farm's ABIs with its queue's length now (0 for an empty queue), in build order.
CREATE OR REPLACE FUNCTION queue_lengths() RETURNS TABLE (abi_tag varchar, length bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM fold_queue_journal();
    RETURN QUERY
        SELECT a.abi_tag, coalesce(sum(l.length), 0)::bigint
        FROM build_abis a LEFT JOIN build_queue_lengths l ON l.abi_tag = a.abi_tag
        GROUP BY a.abi_tag, a.python_order
        ORDER BY a.python_order;
END;
$$;

-- Each ABI's queue length per tier (0 an operator's priority, 1 newest releases, 2 the
-- backlog), every tier of every ABI listed, in build order.
CREATE FUNCTION queue_tier_lengths()
RETURNS TABLE (abi_tag varchar, tier smallint, length bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM fold_queue_journal();
    RETURN QUERY
        SELECT a.abi_tag, t.tier::smallint, coalesce(sum(l.length), 0)::bigint
        FROM build_abis a
        CROSS JOIN generate_series(0, 2) AS t(tier)
        LEFT JOIN build_queue_lengths l ON l.abi_tag = a.abi_tag AND l.tier = t.tier
        GROUP BY a.abi_tag, a.python_order, t.tier
        ORDER BY a.python_order, t.tier;
END;
$$;
