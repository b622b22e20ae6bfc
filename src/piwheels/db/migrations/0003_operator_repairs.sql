-- What Mr. Chase does for operators (piw-remove, piw-add): each one function, one transaction,
-- and each raises no_data_found, naming what it could not find, for an unknown package/version.

CREATE FUNCTION _version_id(pkg text, ver text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint;
BEGIN
    SELECT version_id INTO vid FROM versions WHERE package = pkg AND version = ver;
    IF vid IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM packages WHERE package = pkg) THEN
            RAISE EXCEPTION 'no such package: %', pkg USING ERRCODE = 'no_data_found';
        END IF;
        RAISE EXCEPTION 'no such version: % %', pkg, ver USING ERRCODE = 'no_data_found';
    END IF;
    RETURN vid;
END;
$$;

-- Forget every build of a version and return the files that must leave the disk. With a
-- reason the version is never built again; without one it goes back to the queue.
CREATE FUNCTION remove_version(pkg text, ver text, reason text) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint := _version_id(pkg, ver);
BEGIN
    RETURN QUERY
        DELETE FROM files f USING builds b
        WHERE f.build_id = b.build_id AND b.version_id = vid
        RETURNING f.filename::text;
    DELETE FROM builds WHERE version_id = vid;
    UPDATE versions SET skip = reason WHERE version_id = vid AND reason <> '';
    PERFORM queue_version(vid);
END;
$$;

-- Record a package, or a version of one, by hand (say, one PyPI's feed missed).
CREATE FUNCTION add_by_hand(pkg text, ver text, reason text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO packages (package, display_name, skip) VALUES (pkg, pkg, coalesce(reason, ''))
    ON CONFLICT (package) DO NOTHING;
    IF ver IS NOT NULL THEN
        INSERT INTO versions (package, version, released, has_sdist, skip)
        VALUES (pkg, ver, now(), true, coalesce(reason, ''))
        ON CONFLICT (package, version) DO NOTHING;
        PERFORM queue_version(_version_id(pkg, ver));
    END IF;
END;
$$;

-- Set (or, with '', clear) the reason never to build a package or one version.
CREATE FUNCTION set_skip(pkg text, ver text, reason text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint;
BEGIN
    IF ver IS NULL THEN
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
        PERFORM queue_version(vid);
    END IF;
END;
$$;

CREATE FUNCTION set_yanked(pkg text, ver text, is_yanked boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint := _version_id(pkg, ver);
BEGIN
    UPDATE versions SET yanked = is_yanked WHERE version_id = vid;
    PERFORM queue_version(vid);
END;
$$;

-- Forget a version's failed builds (on one ABI, or all) so they are queued again; returns how
-- many were forgotten.
CREATE FUNCTION retry_failed(pkg text, ver text, abi text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint := _version_id(pkg, ver);
    n integer;
BEGIN
    DELETE FROM builds WHERE version_id = vid AND NOT status AND (abi IS NULL OR abi_tag = abi);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM queue_version(vid);
    RETURN n;
END;
$$;
