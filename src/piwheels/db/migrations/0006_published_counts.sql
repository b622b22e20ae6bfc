-- Each package's count of published files, kept by the functions that publish and unpublish
-- them (issue #5, noticed at PyPI's scale).
--
-- The index root lists the packages with a published file and the search index counts each
-- one's files. Both were a join of every file with its build and version: 25-40 s (root) and
-- 54 s (search) on a synthetic PyPI of 5,000,000 builds, every time either page was written.
-- Every file is published by log_build and unpublished by remove_version or retry_failed
-- (all writes go through these functions), so each keeps the count in the same transaction.
ALTER TABLE packages ADD COLUMN files integer NOT NULL DEFAULT 0;
UPDATE packages p SET files = c.n
FROM (
    SELECT v.package, count(*) AS n
    FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id)
    GROUP BY v.package
) AS c
WHERE p.package = c.package;

CREATE OR REPLACE FUNCTION log_build(
    slave_id integer, pkg text, ver text, build_abi text, build_status boolean,
    build_duration interval, build_output text, build_covers_from integer, build_files jsonb
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint;
    bid bigint;
    published integer;
BEGIN
    SELECT version_id INTO vid FROM versions WHERE package = pkg AND version = ver;
    IF vid IS NULL THEN
        RAISE EXCEPTION 'unknown version % %', pkg, ver USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO builds (version_id, abi_tag, built_by, duration, status, covers_from)
    VALUES (vid, build_abi, slave_id, build_duration, build_status, build_covers_from)
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

CREATE OR REPLACE FUNCTION remove_version(pkg text, ver text, reason text) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint := _version_id(pkg, ver);
    unpublished integer;
BEGIN
    RETURN QUERY
        DELETE FROM files f USING builds b
        WHERE f.build_id = b.build_id AND b.version_id = vid
        RETURNING f.filename::text;
    GET DIAGNOSTICS unpublished = ROW_COUNT;
    UPDATE packages SET files = files - unpublished WHERE package = pkg AND unpublished > 0;
    DELETE FROM builds WHERE version_id = vid;
    UPDATE versions SET skip = reason WHERE version_id = vid AND reason <> '';
    PERFORM queue_version(vid);
END;
$$;

CREATE OR REPLACE FUNCTION retry_failed(pkg text, ver text, abi text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint := _version_id(pkg, ver);
    n integer;
BEGIN
    -- a failed build rarely has files, but any it has go with it
    UPDATE packages SET files = files - (
        SELECT count(*) FROM files f JOIN builds b USING (build_id)
        WHERE b.version_id = vid AND NOT b.status AND (abi IS NULL OR b.abi_tag = abi)
    ) WHERE package = pkg;
    DELETE FROM builds WHERE version_id = vid AND NOT status AND (abi IS NULL OR abi_tag = abi);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM queue_version(vid);
    RETURN n;
END;
$$;
