-- daily_hits keyed by day first: a batch's rows are together at the key's end.
--
-- A batch of a log counts its downloads and other hits per project per day: rows of the last
-- day or two, across hundreds of projects. Keyed (package, kind, day), those rows lay all over a
-- year's index (750 MB at a busy site's year), each in a page of its own that had to be read,
-- and written back, for every batch: on bench_logs' year, recording the daily rows took 18 ms of
-- a 74 ms batch. Keyed (day, kind, package), they share the few pages at the index's end.
--
-- A project page's figure (its last 30 days) is then 30 probes of that key, one a day, and one
-- more for any day after today (a web server whose clock runs ahead); the hourly recount reads
-- the last 30 days' part of the key, as it is laid out now.
ALTER TABLE daily_hits DROP CONSTRAINT daily_hits_pkey;
ALTER TABLE daily_hits ADD CONSTRAINT daily_hits_pkey PRIMARY KEY (day, kind, package);

CREATE OR REPLACE FUNCTION project_downloads(pkg text, OUT last_30_days bigint, OUT all_time bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT (coalesce((SELECT sum(hits) FROM daily_hits
                      WHERE day = ANY(ARRAY(SELECT (now() AT TIME ZONE 'UTC')::date - n
                                            FROM generate_series(0, 29) AS n))
                        AND kind = 'download' AND package = pkg), 0)
            + coalesce((SELECT sum(hits) FROM daily_hits
                        WHERE day > (now() AT TIME ZONE 'UTC')::date
                          AND kind = 'download' AND package = pkg), 0))::bigint,
           coalesce((SELECT t.all_time FROM download_totals t WHERE t.package = pkg), 0);
$$;


-- As 0017's, its daily rows written in the key's order.
CREATE OR REPLACE FUNCTION record_hits(
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
    ORDER BY day, kind, package  -- the key's order, one for every writer: no deadlock
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
