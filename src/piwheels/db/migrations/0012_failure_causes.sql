-- Why a build failed, and what happens next (issue #15).
--
-- A failed build was final and opaque: "failed", a log, and nothing retried until an operator
-- acted, though the build requirement it lacked would be released next week. Each failed build
-- now records its cause (failures.Cause: a closed list), a summary quoting the log line that
-- decided it, what it lacked (wants: "kind:name") and the Debian packages that would provide it
-- (needs: each "a | b" a set of alternatives), and one of three outcomes, as Debian's
-- wanna-build has:
--
--   failed     final, until an operator retries it (piw-add --retry, or --retry-cause)
--   dep-wait   waits for something that can arrive: a release on PyPI satisfying a build
--              requirement (waits_for: the project; released by set_projects' caller, which
--              checks the requirement with packaging), or a Debian package an operator says is
--              now installed on the ABI's builders (debian_installed)
--   give-back  a transient cause (the slave lost, the network, a full disk, no sdist yet, out of
--              memory): back to the queue at retry_at, a delay doubling with each try, and
--              failed after the farm's give-back tries
--
-- A build stands, and keeps its version off that ABI's queue, until requeued_at is set: when a
-- give-back's time comes, a dep-wait's need is met, or an operator retries it. Requeued builds
-- stay on record (the page lists them as earlier attempts, and they count a give-back's tries).
-- Failed builds recorded before this migration have cause 'unknown' and an empty summary.
ALTER TABLE builds
    ADD COLUMN cause       varchar(20),
    ADD COLUMN summary     text         NOT NULL DEFAULT '',
    ADD COLUMN wants       text[]       NOT NULL DEFAULT '{}',
    ADD COLUMN needs       text[]       NOT NULL DEFAULT '{}',
    ADD COLUMN outcome     varchar(10)  NOT NULL DEFAULT 'built',
    ADD COLUMN waits_for   varchar(200),
    ADD COLUMN retry_at    timestamptz,
    ADD COLUMN requeued_at timestamptz;
UPDATE builds SET outcome = 'failed', cause = 'unknown' WHERE NOT status;
ALTER TABLE builds
    ADD CONSTRAINT builds_outcome_check CHECK (
        (status AND outcome = 'built' AND cause IS NULL)
        OR (NOT status AND outcome IN ('failed', 'dep-wait', 'give-back') AND cause IS NOT NULL)),
    ADD CONSTRAINT builds_cause_check CHECK (cause IN (
        'missing-header', 'missing-library', 'missing-tool', 'build-requirement',
        'python-version', 'timeout', 'out-of-memory', 'disk-full', 'network', 'no-sdist',
        'import-failed', 'slave-lost', 'unknown')),
    ADD CONSTRAINT builds_retry_check CHECK ((outcome = 'give-back') = (retry_at IS NOT NULL));
-- the few builds waiting, found without reading all the others
CREATE INDEX builds_given_back ON builds (retry_at)
    WHERE outcome = 'give-back' AND requeued_at IS NULL;
CREATE INDEX builds_waiting ON builds (waits_for)
    WHERE outcome = 'dep-wait' AND requeued_at IS NULL;


-- queue_version() as in migration 0011: only standing builds keep a version off an ABI.
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
          WHERE b.version_id = vid AND b.requeued_at IS NULL
            AND (b.abi_tag = a.abi_tag OR (b.status AND b.covers_from <= a.python_order)))
    ORDER BY a.python_order
    LIMIT 1;
END;
$$;

-- requeue_all() as in migration 0011: only standing builds keep a version off an ABI.
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


-- log_build() as in migration 0006, with a failed build's cause. failure is NULL for a build
-- that succeeded, otherwise {cause, summary, wants, needs, outcome, waits_for, tries, delay}:
-- outcome as the master decided it from the cause; a give-back becomes failed on its
-- tries'th give-back of the version on that ABI, and otherwise waits delay seconds doubled for
-- each give-back before it.
DROP FUNCTION log_build(integer, text, text, text, boolean, interval, text, integer, jsonb);
CREATE FUNCTION log_build(
    slave_id integer, pkg text, ver text, build_abi text, build_status boolean,
    build_duration interval, build_output text, build_covers_from integer, build_files jsonb,
    failure jsonb
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint;
    bid bigint;
    published integer;
    given_back integer;
    result_outcome text := 'built';
    result_summary text := '';
    retry timestamptz;
BEGIN
    SELECT version_id INTO vid FROM versions WHERE package = pkg AND version = ver;
    IF vid IS NULL THEN
        RAISE EXCEPTION 'unknown version % %', pkg, ver USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT build_status THEN
        result_outcome := coalesce(failure ->> 'outcome', 'failed');
        result_summary := coalesce(failure ->> 'summary', '');
        IF result_outcome = 'give-back' THEN
            SELECT count(*) INTO given_back FROM builds
            WHERE version_id = vid AND abi_tag = build_abi AND outcome = 'give-back';
            IF given_back + 1 >= coalesce((failure ->> 'tries')::integer, 1) THEN
                result_outcome := 'failed';
                result_summary := format('%s (tried %s times)', result_summary, given_back + 1);
            ELSE
                retry := now() + make_interval(
                    secs => coalesce((failure ->> 'delay')::double precision, 0)
                            * 2 ^ given_back);
            END IF;
        END IF;
    END IF;
    INSERT INTO builds (version_id, abi_tag, built_by, duration, status, covers_from, cause,
                        summary, wants, needs, outcome, waits_for, retry_at)
    VALUES (vid, build_abi, slave_id, build_duration, build_status, build_covers_from,
            CASE WHEN build_status THEN NULL ELSE coalesce(failure ->> 'cause', 'unknown') END,
            result_summary,
            coalesce(ARRAY(SELECT jsonb_array_elements_text(failure -> 'wants')), '{}'),
            coalesce(ARRAY(SELECT jsonb_array_elements_text(failure -> 'needs')), '{}'),
            result_outcome,
            CASE WHEN result_outcome = 'dep-wait' THEN failure ->> 'waits_for' END,
            retry)
    RETURNING build_id INTO bid;
    INSERT INTO output (build_id, output) VALUES (bid, build_output);

    INSERT INTO files (filename, build_id, filesize, filehash, package_tag, package_version_tag,
                       py_version_tag, abi_tag, platform_tag, requires_python)
    SELECT x.filename, bid, x.filesize, x.filehash, x.package_tag, x.package_version_tag,
           x.py_version_tag, x.abi_tag, x.platform_tag, x.requires_python
    FROM jsonb_to_recordset(build_files) AS x(
        filename text, filesize bigint, filehash text, package_tag text,
        package_version_tag text, py_version_tag text, abi_tag text, platform_tag text,
        requires_python text)
    ON CONFLICT (filename) DO NOTHING;
    GET DIAGNOSTICS published = ROW_COUNT;
    IF published > 0 THEN
        UPDATE packages SET files = files + published WHERE package = pkg;
    END IF;
    INSERT INTO dependencies (filename, tool, dependency)
    SELECT DISTINCT x.filename, d.value ->> 0, d.value ->> 1
    FROM jsonb_to_recordset(build_files) AS x(filename text, dependencies jsonb)
    JOIN files f ON f.filename = x.filename AND f.build_id = bid
    CROSS JOIN LATERAL jsonb_array_elements(x.dependencies) AS d;

    PERFORM queue_version(vid);
    RETURN bid;
END;
$$;


-- Requeue the standing builds *bids* that have not succeeded (a dep-wait met, a give-back due,
-- an operator's retry): each stays on record and its version goes back to the queue. Returns
-- the builds requeued.
CREATE FUNCTION requeue_builds(bids bigint[]) RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint;
    requeued bigint[];
BEGIN
    WITH r AS (
        UPDATE builds SET requeued_at = now()
        WHERE build_id = ANY(bids) AND NOT status AND requeued_at IS NULL
        RETURNING build_id, version_id
    )
    SELECT array_agg(build_id), array_agg(DISTINCT version_id) INTO requeued, bids FROM r;
    FOR vid IN SELECT unnest(coalesce(bids, '{}')) LOOP
        PERFORM queue_version(vid);
    END LOOP;
    RETURN QUERY SELECT unnest(coalesce(requeued, '{}'));
END;
$$;

-- The give-backs whose time has come, back to the queue (the Architect asks every refresh).
CREATE FUNCTION requeue_given_back() RETURNS SETOF bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT requeue_builds(ARRAY(
        SELECT build_id FROM builds
        WHERE outcome = 'give-back' AND requeued_at IS NULL AND retry_at <= now()
        ORDER BY retry_at LIMIT 10000));
$$;

-- An operator's retry of every standing failure (failed or dep-wait) of *why* (a cause), on
-- the ABI *abi* or every ABI (NULL).
CREATE FUNCTION retry_cause(why text, abi text) RETURNS SETOF bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT requeue_builds(ARRAY(
        SELECT build_id FROM builds
        WHERE cause = why AND outcome IN ('failed', 'dep-wait') AND requeued_at IS NULL
          AND (abi IS NULL OR abi_tag = abi)));
$$;

-- An operator says the Debian package *deb* is now installed on the builders of *abi* (NULL:
-- every ABI): the dep-waits needing it go back to the queue. A build needing two packages
-- waits again for the second when it fails for want of it.
CREATE FUNCTION debian_installed(deb text, abi text) RETURNS SETOF bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT requeue_builds(ARRAY(
        SELECT b.build_id FROM builds b
        WHERE b.outcome = 'dep-wait' AND b.requeued_at IS NULL AND b.waits_for IS NULL
          AND (abi IS NULL OR b.abi_tag = abi)
          AND EXISTS (
              SELECT 1 FROM unnest(b.needs) AS n(alternatives)
              WHERE deb = ANY(string_to_array(n.alternatives, ' | ')))));
$$;
