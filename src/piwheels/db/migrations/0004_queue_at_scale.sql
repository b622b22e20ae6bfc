-- The build queue at PyPI's scale (issue #5). Figures from bench/bench_queue.py on a synthetic
-- PyPI (1,000,000 packages, 8,000,000 versions, 5,000,000 builds, 4 ABIs) on a shared 2-core
-- machine, each beside a reference measured in the same run; see each section.


-- 1. Each version's builds, straight from one index.
--
-- The queue's rules look at every build of a version: its ABI, whether it worked, which ABIs
-- its wheels cover. With those columns in the index, queue_version (every recorded build) and
-- requeue_all read the index alone, in version order, instead of visiting millions of heap
-- pages in build order. Same name and key as before, so every plan that used it still can.
DROP INDEX builds_version_id;
CREATE INDEX builds_version_id ON builds (version_id) INCLUDE (abi_tag, status, covers_from);


-- 2. requeue_all(): 221 s -> 12 s with nothing to change, 260 s -> 142 s from an empty queue
--    (26x -> 1.7x and 31x -> 21x the time to copy every version's id and release time into a
--    new table). From empty, the ~5 million inserts and their foreign-key checks are the cost.
--
-- Before, it crossed every version with every ABI and anti-joined each of the 32 million pairs
-- against builds and skips, then TRUNCATEd the queue and inserted ~5 million rows again; and
-- TRUNCATE's lock stopped every reader of the queue (the Architect, project pages) and every
-- build being recorded for those minutes. Now one pass in version order (merge joins over the
-- versions, the covering index above, the skips and the queue itself; hash tables of millions
-- of versions cost more than they save here) folds each version's blocked ABIs into a bitmask
-- (bit n: the n-th ABI by Python version; an ABI built on, skipped, or covered by a none/abi3
-- wheel), takes the lowest clear bit, and keeps only the versions whose entry differs from the
-- queue as it stands. Only those rows are deleted and inserted: an unchanged queue costs no
-- writes, and readers never wait. SHARE ROW EXCLUSIVE keeps out builds being recorded meanwhile
-- (a queue computed from an older picture must not undo their changes), but not readers.
--
-- The bit of each ABI is spelt out in CASE arms generated from build_abis (EXECUTE), which
-- evaluate several times faster per row than array or table lookups.
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
        SELECT version_id, wanted, released, queued FROM (
            SELECT version_id, released, queued, queued_released,
                   CASE WHEN eligible THEN CASE %s END END AS wanted
            FROM (
                SELECT v.version_id, v.released, q.abi_tag AS queued,
                       q.released AS queued_released,
                       coalesce(b.mask, 0) | coalesce(s.mask, 0) AS m,
                       v.has_sdist AND NOT v.yanked AND NOT v.removed AND v.skip = ''
                           AND x.version_id IS NULL AS eligible
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
                    -- the versions of skipped and removed packages: few, found by index
                    SELECT v.version_id FROM packages p JOIN versions v USING (package)
                    WHERE p.skip <> '' OR p.removed
                ) AS x USING (version_id)
                LEFT JOIN build_queue q USING (version_id)
                OFFSET 0
            ) AS t
            OFFSET 0
        ) AS w
        WHERE wanted IS DISTINCT FROM queued
           OR (wanted IS NOT NULL AND released IS DISTINCT FROM queued_released)
    $sql$, lowest_free, bit_of_abi, bits_covered, bit_of_abi);
    ANALYZE requeue_changes;
    DELETE FROM build_queue q USING requeue_changes c
    WHERE q.version_id = c.version_id AND c.queued IS NOT NULL;
    -- in version order, so the foreign-key checks walk the versions' index in order too
    INSERT INTO build_queue (version_id, abi_tag, released)
    SELECT c.version_id, c.wanted, c.released FROM requeue_changes c
    WHERE c.wanted IS NOT NULL ORDER BY c.version_id;
END;
$$;


-- 3. set_project(): a new release of the biggest project (7,071 versions) at the head of its
--    queue in 5.6 s -> 0.31 s (set_project + get_queue); of a new project, 0.82 s -> 0.022 s.
--
-- Cloud Gazer sends a project's every version whenever PyPI's serial for it moves. Before,
-- each call rewrote every version row, deleted and re-inserted every skip, and recomputed every
-- version's queue entry: one new release of a project with thousands of versions cost
-- thousands of writes before it was queued. Now only versions that are new, changed, gone from
-- PyPI, or whose skips changed are written and requeued; all of them only when the project
-- comes back after being removed (remove_project took them out of the queue).
CREATE OR REPLACE FUNCTION set_project(
    pkg text, pkg_display_name text, pkg_serial bigint, pkg_summary text,
    pkg_description text, pkg_versions jsonb
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    was_removed boolean;
    gone bigint[];
    changed bigint[];
    reskipped bigint[];
    vid bigint;
BEGIN
    SELECT removed INTO was_removed FROM packages WHERE package = pkg;
    INSERT INTO packages AS p (package, display_name, serial, summary, description)
    VALUES (pkg, pkg_display_name, pkg_serial, pkg_summary, pkg_description)
    ON CONFLICT (package) DO UPDATE SET
        display_name = excluded.display_name, serial = excluded.serial,
        summary = excluded.summary, description = excluded.description, removed = false;

    WITH g AS (
        UPDATE versions v SET removed = true
        WHERE v.package = pkg AND NOT v.removed
          AND v.version NOT IN (
              SELECT x.version FROM jsonb_to_recordset(pkg_versions) AS x(version text))
        RETURNING v.version_id
    )
    SELECT array_agg(version_id) INTO gone FROM g;

    WITH u AS (
        INSERT INTO versions AS v (package, version, released, requires_python, has_sdist,
                                   yanked, skip)
        SELECT pkg, x.version, x.released, x.requires_python, x.has_sdist, x.yanked, x.skip
        FROM jsonb_to_recordset(pkg_versions) AS x(
            version text, released timestamptz, requires_python text, has_sdist boolean,
            yanked boolean, skip text)
        ON CONFLICT (package, version) DO UPDATE SET
            released = excluded.released, requires_python = excluded.requires_python,
            has_sdist = excluded.has_sdist, yanked = excluded.yanked, removed = false,
            -- an operator's skip outlives PyPI updates; the follower's own reasons do not
            skip = CASE WHEN v.skip <> '' AND excluded.skip = '' THEN v.skip
                        ELSE excluded.skip END
        -- an unchanged version is left alone: no new row version, nothing to requeue
        WHERE (v.released, v.requires_python, v.has_sdist, v.yanked, v.removed, v.skip)
              IS DISTINCT FROM
              (excluded.released, excluded.requires_python, excluded.has_sdist,
               excluded.yanked, false,
               CASE WHEN v.skip <> '' AND excluded.skip = '' THEN v.skip
                    ELSE excluded.skip END)
        RETURNING v.version_id
    )
    SELECT array_agg(version_id) INTO changed FROM u;

    -- versions whose skips (the master's, from Requires-Python) differ from those on record;
    -- versions no longer listed keep none, as before
    WITH incoming AS (
        SELECT v.version_id, sk.value ->> 0 AS abi_tag, sk.value ->> 1 AS reason
        FROM jsonb_to_recordset(pkg_versions) AS x(version text, abi_skips jsonb)
        JOIN versions v ON v.package = pkg AND v.version = x.version
        CROSS JOIN LATERAL jsonb_array_elements(x.abi_skips) AS sk
        WHERE sk.value ->> 0 IN (SELECT abi_tag FROM build_abis)
    ), recorded AS (
        SELECT s.version_id, s.abi_tag::text AS abi_tag, s.reason
        FROM version_abi_skips s JOIN versions v USING (version_id) WHERE v.package = pkg
    )
    SELECT array_agg(DISTINCT d.version_id) INTO reskipped FROM (
        (SELECT * FROM recorded EXCEPT SELECT * FROM incoming)
        UNION ALL
        (SELECT * FROM incoming EXCEPT SELECT * FROM recorded)
    ) AS d;
    DELETE FROM version_abi_skips WHERE version_id = ANY(reskipped);
    INSERT INTO version_abi_skips (version_id, abi_tag, reason)
    SELECT v.version_id, sk.value ->> 0, sk.value ->> 1
    FROM jsonb_to_recordset(pkg_versions) AS x(version text, abi_skips jsonb)
    JOIN versions v ON v.package = pkg AND v.version = x.version
    CROSS JOIN LATERAL jsonb_array_elements(x.abi_skips) AS sk
    WHERE v.version_id = ANY(reskipped)
      AND sk.value ->> 0 IN (SELECT abi_tag FROM build_abis);

    IF was_removed THEN
        FOR vid IN SELECT version_id FROM versions WHERE package = pkg LOOP
            PERFORM queue_version(vid);
        END LOOP;
    ELSE
        FOR vid IN
            SELECT DISTINCT u.id
            FROM unnest(coalesce(gone, '{}') || coalesce(changed, '{}')
                        || coalesce(reskipped, '{}')) AS u(id)
        LOOP
            PERFORM queue_version(vid);
        END LOOP;
    END IF;
END;
$$;


-- 4. The queue's length per ABI: a count of ~5 million rows, 0.39 s of the Architect's 0.43 s
--    get_queue every 5 s (and of Big Brother's statistics every minute): get_queue 0.43 s ->
--    0.023 s.
--
-- Kept as a total per ABI plus a journal of changes: every statement that changes the queue
-- appends its net change per ABI to the journal (statement triggers, so requeue_all's millions
-- of rows make one aggregate, and queue_version's move two small inserts), and queue_lengths()
-- folds the journal into the totals when asked. Nothing but the fold updates a total, so a
-- build being recorded never waits for, or deadlocks with, another on a shared counter row.
CREATE TABLE build_queue_lengths (
    abi_tag varchar(100) PRIMARY KEY,
    length  bigint       NOT NULL
);
CREATE TABLE build_queue_journal (
    abi_tag varchar(100) NOT NULL,
    delta   bigint       NOT NULL
);
INSERT INTO build_queue_lengths (abi_tag, length)
SELECT abi_tag, count(*) FROM build_queue GROUP BY abi_tag;

CREATE FUNCTION build_queue_journal_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO build_queue_journal (abi_tag, delta)
    SELECT abi_tag, count(*) FROM added GROUP BY abi_tag;
    RETURN NULL;
END;
$$;

CREATE FUNCTION build_queue_journal_removed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO build_queue_journal (abi_tag, delta)
    SELECT abi_tag, -count(*) FROM removed GROUP BY abi_tag;
    RETURN NULL;
END;
$$;

CREATE FUNCTION build_queue_journal_moved() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO build_queue_journal (abi_tag, delta)
    SELECT abi_tag, sum(delta) FROM (
        SELECT abi_tag, 1 AS delta FROM added
        UNION ALL
        SELECT abi_tag, -1 FROM removed
    ) AS d GROUP BY abi_tag HAVING sum(delta) <> 0;
    RETURN NULL;
END;
$$;

-- TRUNCATE fires no DELETE trigger: the totals start again from nothing.
CREATE FUNCTION build_queue_journal_emptied() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    DELETE FROM build_queue_journal;
    UPDATE build_queue_lengths SET length = 0;
    RETURN NULL;
END;
$$;

CREATE TRIGGER build_queue_added AFTER INSERT ON build_queue
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION build_queue_journal_added();
CREATE TRIGGER build_queue_removed AFTER DELETE ON build_queue
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION build_queue_journal_removed();
CREATE TRIGGER build_queue_moved AFTER UPDATE ON build_queue
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION build_queue_journal_moved();
CREATE TRIGGER build_queue_emptied AFTER TRUNCATE ON build_queue
    FOR EACH STATEMENT EXECUTE FUNCTION build_queue_journal_emptied();

-- Each of the farm's ABIs with its queue's length now (0 for an empty queue), in build order.
CREATE FUNCTION queue_lengths() RETURNS TABLE (abi_tag varchar, length bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    -- Takes (and deletes) only journal rows already committed; any committed meanwhile stay
    -- for the next call. Of two calls at once, the second skips the rows the first took.
    WITH taken AS (
        DELETE FROM build_queue_journal RETURNING build_queue_journal.abi_tag, delta
    )
    INSERT INTO build_queue_lengths AS l (abi_tag, length)
    SELECT t.abi_tag, sum(t.delta) FROM taken t GROUP BY t.abi_tag
    ON CONFLICT ON CONSTRAINT build_queue_lengths_pkey
    DO UPDATE SET length = l.length + excluded.length;
    RETURN QUERY
        SELECT a.abi_tag, coalesce(l.length, 0)::bigint
        FROM build_abis a LEFT JOIN build_queue_lengths l ON l.abi_tag = a.abi_tag
        ORDER BY a.python_order;
END;
$$;
