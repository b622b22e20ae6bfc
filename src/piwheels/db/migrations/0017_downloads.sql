-- Downloads, searches and page hits, from the web server's access logs (#20). piw-logger reads
-- the logs and the Hit Counter records what it found, one batch per transaction (record_hits).
--
-- A busy site serves tens of millions of downloads a year, and the page writer must show each
-- project's figures within its budget. So each download is one narrow row (when, which file,
-- which client), kept for the installers' figures; and what the pages show is kept apart, in
-- the same transaction, as counts per project per day (daily_hits), per day for the whole farm
-- (farm_daily) and per project for all time (download_totals). A project page reads at most 30
-- of its own daily rows; the home page reads 30 farm rows and the top of one index.
--
-- No address of a client is kept: the figures do not need to know who downloaded.

-- A client as it describes itself: pip and uv say their version, the Python, OS, distribution
-- and CPU they run on. Each description is stored once. '' is "not said", so that the unique
-- constraint and the joins need no NULL games.
CREATE TABLE clients (
    client_id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    installer              varchar(100) NOT NULL,
    installer_version      varchar(100) NOT NULL,
    implementation         varchar(100) NOT NULL,
    implementation_version varchar(100) NOT NULL,
    python                 varchar(100) NOT NULL,
    os                     varchar(100) NOT NULL,
    os_version             varchar(100) NOT NULL,
    distro                 varchar(100) NOT NULL,
    distro_version         varchar(100) NOT NULL,
    cpu                    varchar(100) NOT NULL,
    CONSTRAINT clients_described UNIQUE (installer, installer_version, implementation,
        implementation_version, python, os, os_version, distro, distro_version, cpu)
);

-- Each download. No foreign key to files: a file removed later keeps its downloads. Rows arrive
-- in time order, so a BRIN index finds a period's downloads in a few blocks and costs an
-- insert almost nothing.
CREATE TABLE downloads (
    accessed_at timestamptz  NOT NULL,
    filename    varchar(255) NOT NULL,
    client_id   integer      NOT NULL REFERENCES clients
);
CREATE INDEX downloads_accessed_at ON downloads USING brin (accessed_at);

-- What the pages show. kind: download (a wheel), search (an installer looked the project up in
-- the index), project (its page), json (its JSON). Days are UTC days. No foreign key to
-- packages: hits count whatever the web server served.
CREATE TABLE daily_hits (
    package varchar(200) NOT NULL,
    kind    varchar(10)  NOT NULL CHECK (kind IN ('download', 'search', 'project', 'json')),
    day     date         NOT NULL,
    hits    bigint       NOT NULL,
    PRIMARY KEY (package, kind, day)
);

CREATE TABLE farm_daily (
    kind varchar(10) NOT NULL CHECK (kind IN ('download', 'search', 'project', 'json')),
    day  date        NOT NULL,
    hits bigint      NOT NULL,
    PRIMARY KEY (kind, day)
);

-- Each downloaded project's all-time count, and its last 30 days' (each batch adds to both;
-- refresh_downloads() takes off, hourly, the days that have left the window).
CREATE TABLE download_totals (
    package      varchar(200) PRIMARY KEY,
    all_time     bigint       NOT NULL,
    last_30_days bigint       NOT NULL
);
CREATE INDEX download_totals_popular ON download_totals (last_30_days DESC);

-- Where each log has been read to. A log is known by the sha256 of its first line, which the
-- log keeps when it is rotated and gzipped, so a reader resumes across rotations; the cursor
-- moves in the same transaction as the batch is recorded, so no line is counted twice.
CREATE TABLE log_cursors (
    identity   char(64)    PRIMARY KEY CHECK (identity ~ '^[0-9a-f]{64}$'),
    read_to    bigint      NOT NULL,  -- bytes of the log recorded
    lines      bigint      NOT NULL,  -- lines read
    bad_lines  bigint      NOT NULL,  -- of which not in a format piw-logger reads
    updated_at timestamptz NOT NULL DEFAULT now()
);


-- Where a log's reading resumes: 0 for a log never read.
CREATE FUNCTION log_cursor(log_identity text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce((SELECT read_to FROM log_cursors WHERE identity = log_identity), 0);
$$;


-- A project's popularity, the build queue's tie-breaker (migration 0010): the number of binary
-- digits of its downloads in the last 30 days. An order of magnitude, not the count, so that a
-- day's downloads move only the projects that crossed a power of two, not every queued version
-- of every project downloaded that day.
CREATE FUNCTION popularity_of(downloads bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT length(ltrim(greatest(downloads, 0)::bit(64)::text, '0'))::bigint;
$$;


-- Count again the last 30 days of *pkgs*, and move the queue entries of those whose popularity
-- changed. Returns how many projects' popularity changed.
CREATE FUNCTION recount_downloads(pkgs text[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    moved text[];
BEGIN
    UPDATE download_totals t SET last_30_days = r.hits
    FROM (
        SELECT p.package, coalesce(sum(h.hits), 0) AS hits
        FROM unnest(pkgs) AS p (package)
        LEFT JOIN daily_hits h ON h.package = p.package AND h.kind = 'download'
            AND h.day > (now() AT TIME ZONE 'UTC')::date - 30
        GROUP BY p.package
    ) AS r
    WHERE t.package = r.package AND t.last_30_days <> r.hits;

    WITH changed AS (
        UPDATE packages p SET popularity = popularity_of(t.last_30_days)
        FROM download_totals t
        WHERE t.package = p.package AND p.package = ANY(pkgs)
          AND p.popularity <> popularity_of(t.last_30_days)
        RETURNING p.package
    )
    SELECT array_agg(package) INTO moved FROM changed;
    IF moved IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM reorder_queue(moved);
    RETURN cardinality(moved);
END;
$$;


-- As days pass, downloads leave the last 30 days: count again every project that had some.
CREATE FUNCTION refresh_downloads() RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT recount_downloads(ARRAY(
        SELECT package FROM download_totals WHERE last_30_days > 0
        UNION
        SELECT package FROM packages WHERE popularity > 0));
$$;


-- One batch of a log, read from byte *from_offset* to *to_offset*: its clients (each an array
-- of the ten fields of a client row), its downloads ([time, filename, package, index into
-- clients]) and its other hits, already counted ([package, kind, day, hits]). Returns false,
-- recording nothing, when the log's cursor is not at *from_offset*: the batch was recorded
-- already (its answer lost), or another reader is reading the same log.
CREATE FUNCTION record_hits(
    log_identity text, from_offset bigint, to_offset bigint, lines_read bigint,
    bad bigint, batch_clients jsonb, batch_downloads jsonb, batch_hits jsonb)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    at bigint;
    touched text[];
BEGIN
    SELECT read_to INTO at FROM log_cursors WHERE identity = log_identity FOR UPDATE;
    IF coalesce(at, 0) <> from_offset OR to_offset < from_offset THEN
        RETURN false;
    END IF;
    INSERT INTO log_cursors AS c (identity, read_to, lines, bad_lines)
    VALUES (log_identity, to_offset, lines_read, bad)
    ON CONFLICT (identity) DO UPDATE
    SET read_to = excluded.read_to, lines = c.lines + excluded.lines,
        bad_lines = c.bad_lines + excluded.bad_lines, updated_at = now();

    CREATE TEMPORARY TABLE IF NOT EXISTS batch_client (
        place integer PRIMARY KEY, client_id integer) ON COMMIT DROP;
    INSERT INTO clients (installer, installer_version, implementation, implementation_version,
                         python, os, os_version, distro, distro_version, cpu)
    SELECT DISTINCT c ->> 0, c ->> 1, c ->> 2, c ->> 3, c ->> 4, c ->> 5, c ->> 6, c ->> 7,
           c ->> 8, c ->> 9
    FROM jsonb_array_elements(batch_clients) AS c
    ON CONFLICT ON CONSTRAINT clients_described DO NOTHING;
    INSERT INTO batch_client (place, client_id)
    SELECT b.place - 1, k.client_id
    FROM jsonb_array_elements(batch_clients) WITH ORDINALITY AS b (c, place)
    JOIN clients k ON (k.installer, k.installer_version, k.implementation,
                       k.implementation_version, k.python, k.os, k.os_version, k.distro,
                       k.distro_version, k.cpu)
                    = (c ->> 0, c ->> 1, c ->> 2, c ->> 3, c ->> 4, c ->> 5, c ->> 6, c ->> 7,
                       c ->> 8, c ->> 9);

    CREATE TEMPORARY TABLE IF NOT EXISTS batch_download (
        accessed_at timestamptz, filename text, package text, place integer) ON COMMIT DROP;
    INSERT INTO batch_download
    SELECT (d ->> 0)::timestamptz, d ->> 1, d ->> 2, (d ->> 3)::integer
    FROM jsonb_array_elements(batch_downloads) AS d;
    INSERT INTO downloads (accessed_at, filename, client_id)
    SELECT d.accessed_at, d.filename, b.client_id
    FROM batch_download d JOIN batch_client b USING (place)
    ORDER BY d.accessed_at;

    CREATE TEMPORARY TABLE IF NOT EXISTS batch_hits (
        package text, kind text, day date, hits bigint) ON COMMIT DROP;
    INSERT INTO batch_hits
    SELECT package, 'download', (accessed_at AT TIME ZONE 'UTC')::date, count(*)
    FROM batch_download GROUP BY 1, 3
    UNION ALL
    SELECT h ->> 0, h ->> 1, (h ->> 2)::date, (h ->> 3)::bigint
    FROM jsonb_array_elements(batch_hits) AS h;

    INSERT INTO daily_hits AS d (package, kind, day, hits)
    SELECT package, kind, day, sum(hits) FROM batch_hits GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3  -- one order for every writer: no deadlock between two
    ON CONFLICT (package, kind, day) DO UPDATE SET hits = d.hits + excluded.hits;
    INSERT INTO farm_daily AS f (kind, day, hits)
    SELECT kind, day, sum(hits) FROM batch_hits GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (kind, day) DO UPDATE SET hits = f.hits + excluded.hits;

    -- The batch's downloads are added to the last 30 days too, rather than each touched
    -- project's 30 days summed again: at a year of a busy site that sum, ~30 pages a project,
    -- was most of a batch's time (bench_logs). Days leaving the window are taken off by
    -- refresh_downloads(), hourly.
    WITH counted AS (
        INSERT INTO download_totals AS t (package, all_time, last_30_days)
        SELECT package, sum(hits), coalesce(sum(hits) FILTER
            (WHERE day > (now() AT TIME ZONE 'UTC')::date - 30), 0)
        FROM batch_hits WHERE kind = 'download'
        GROUP BY 1 ORDER BY 1
        ON CONFLICT (package) DO UPDATE SET all_time = t.all_time + excluded.all_time,
            last_30_days = t.last_30_days + excluded.last_30_days
        RETURNING t.package, t.last_30_days
    ), changed AS (
        UPDATE packages p SET popularity = popularity_of(c.last_30_days)
        FROM counted c
        WHERE p.package = c.package AND p.popularity <> popularity_of(c.last_30_days)
        RETURNING p.package
    )
    SELECT array_agg(package) INTO touched FROM changed;
    IF touched IS NOT NULL THEN
        PERFORM reorder_queue(touched);
    END IF;
    TRUNCATE batch_client, batch_download, batch_hits;
    RETURN true;
END;
$$;


-- The figures the pages show: a project's downloads in the last 30 days and all time.
CREATE FUNCTION project_downloads(pkg text, OUT last_30_days bigint, OUT all_time bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce((SELECT sum(hits) FROM daily_hits
                     WHERE package = pkg AND kind = 'download'
                       AND day > (now() AT TIME ZONE 'UTC')::date - 30), 0)::bigint,
           coalesce((SELECT t.all_time FROM download_totals t WHERE t.package = pkg), 0);
$$;
