-- The piwheels schema, first version.
--
-- Every write the master makes goes through a SECURITY DEFINER function below: the master's
-- own role gets SELECT on the tables and EXECUTE on these functions, nothing more (migrate.py
-- grants them), so a compromised master process cannot rewrite history with ad-hoc SQL.
--
-- The build queue is a table kept current by those functions, not a view recomputed from
-- every version x every ABI: recording a version or a build updates that version's queue entry
-- in the same transaction, so a new release is queued at once and reading the queue is an
-- index scan, whatever the size of PyPI.

CREATE TABLE configuration (
    id             integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    schema_version integer NOT NULL,
    pypi_serial    bigint  NOT NULL DEFAULT 0
);
INSERT INTO configuration (schema_version) VALUES (1);

-- ABIs are ordered by Python version (cp39 < cp310 < cp311), never as text: python_order is
-- major * 100 + minor, computed by the master from the tag.
CREATE TABLE build_abis (
    abi_tag        varchar(100) PRIMARY KEY,
    python_order   integer      NOT NULL,
    python_version varchar(20)  NOT NULL
);

CREATE TABLE packages (
    package      varchar(200) PRIMARY KEY,
    display_name varchar(200) NOT NULL,
    serial       bigint       NOT NULL DEFAULT 0,
    summary      text         NOT NULL DEFAULT '',
    description  text         NOT NULL DEFAULT '',
    skip         text         NOT NULL DEFAULT '',  -- non-empty: never build (the reason)
    removed      boolean      NOT NULL DEFAULT false,  -- gone from PyPI
    -- PEP 503 normalized; the master canonicalizes with `packaging` before it gets here.
    CONSTRAINT packages_package_normalized CHECK (package ~ '^[a-z0-9]+(-[a-z0-9]+)*$')
);

CREATE TABLE versions (
    version_id      bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    package         varchar(200) NOT NULL REFERENCES packages ON DELETE CASCADE,
    version         varchar(200) NOT NULL,
    released        timestamptz  NOT NULL,
    requires_python varchar(500),
    has_sdist       boolean      NOT NULL,
    yanked          boolean      NOT NULL DEFAULT false,
    removed         boolean      NOT NULL DEFAULT false,  -- gone from PyPI
    skip            text         NOT NULL DEFAULT '',
    CONSTRAINT versions_package_version_key UNIQUE (package, version)
);

-- An ABI a version is never built for, and why (e.g. its Requires-Python excludes it).
CREATE TABLE version_abi_skips (
    version_id bigint       NOT NULL REFERENCES versions ON DELETE CASCADE,
    abi_tag    varchar(100) NOT NULL REFERENCES build_abis ON DELETE CASCADE,
    reason     text         NOT NULL,
    PRIMARY KEY (version_id, abi_tag)
);

CREATE TABLE builds (
    build_id    bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version_id  bigint       NOT NULL REFERENCES versions ON DELETE CASCADE,
    -- no foreign key: a build stays on record if its ABI is later dropped from the farm
    abi_tag     varchar(100) NOT NULL,
    built_by    integer      NOT NULL,
    built_at    timestamptz  NOT NULL DEFAULT now(),
    duration    interval     NOT NULL,
    status      boolean      NOT NULL,
    -- the lowest python_order whose ABIs this build's wheels serve (a py3-none wheel: 300; a
    -- cp39-abi3 wheel: 309); NULL when they serve only the ABI built on, or the build failed
    covers_from integer
);
CREATE INDEX builds_version_id ON builds (version_id);
CREATE INDEX builds_built_at ON builds (built_at);

CREATE TABLE output (
    build_id bigint PRIMARY KEY REFERENCES builds ON DELETE CASCADE,
    output   text   NOT NULL
);

CREATE TABLE files (
    filename            varchar(255) PRIMARY KEY,
    build_id            bigint       NOT NULL REFERENCES builds ON DELETE CASCADE,
    filesize            bigint       NOT NULL,
    filehash            char(64)     NOT NULL,
    package_tag         varchar(200) NOT NULL,
    package_version_tag varchar(200) NOT NULL,
    py_version_tag      varchar(100) NOT NULL,
    abi_tag             varchar(100) NOT NULL,
    platform_tag        varchar(100) NOT NULL,
    requires_python     varchar(500),
    CONSTRAINT files_filehash_hex CHECK (filehash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX files_build_id ON files (build_id);

CREATE TABLE dependencies (
    filename   varchar(255) NOT NULL REFERENCES files ON DELETE CASCADE,
    tool       varchar(10)  NOT NULL CHECK (tool IN ('pip', 'apt')),
    dependency varchar(255) NOT NULL,
    PRIMARY KEY (filename, tool, dependency)
);

-- At most one entry per version: a version is built on one ABI at a time, lowest first.
-- Order within an ABI: newest release first, so new releases never wait behind a backlog
-- (the backlog drains newest to oldest, which is also the order users want it in).
CREATE TABLE build_queue (
    version_id bigint       PRIMARY KEY REFERENCES versions ON DELETE CASCADE,
    abi_tag    varchar(100) NOT NULL REFERENCES build_abis ON DELETE CASCADE,
    released   timestamptz  NOT NULL  -- copied from versions so the order needs no join
);
CREATE INDEX build_queue_order ON build_queue (abi_tag, released DESC);


-- Recompute one version's queue entry: the lowest ABI it still needs, if any.
CREATE FUNCTION queue_version(vid bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
$$;

-- Recompute every version's queue entry (after the set of ABIs changes).
CREATE FUNCTION requeue_all() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    TRUNCATE build_queue;
    INSERT INTO build_queue (version_id, abi_tag, released)
    SELECT DISTINCT ON (v.version_id) v.version_id, a.abi_tag, v.released
    FROM versions v
    JOIN packages p USING (package)
    CROSS JOIN build_abis a
    WHERE v.has_sdist AND NOT v.yanked AND NOT v.removed AND v.skip = ''
      AND p.skip = '' AND NOT p.removed
      AND NOT EXISTS (
          SELECT 1 FROM version_abi_skips s
          WHERE s.version_id = v.version_id AND s.abi_tag = a.abi_tag)
      AND NOT EXISTS (
          SELECT 1 FROM builds b
          WHERE b.version_id = v.version_id
            AND (b.abi_tag = a.abi_tag OR (b.status AND b.covers_from <= a.python_order)))
    ORDER BY v.version_id, a.python_order;
$$;

CREATE FUNCTION set_pypi_serial(new_serial bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE configuration SET pypi_serial = new_serial WHERE id = 1;
$$;

-- Make the set of ABIs exactly `abis` ([{abi_tag, python_order, python_version}]).
-- Returns true when it changed anything (the caller then recomputes skips and the queue).
CREATE FUNCTION set_build_abis(abis jsonb) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    changed integer := 0;
    n integer;
BEGIN
    DELETE FROM build_abis
    WHERE abi_tag NOT IN (SELECT x.abi_tag FROM jsonb_to_recordset(abis) AS x(abi_tag text));
    GET DIAGNOSTICS n = ROW_COUNT;
    changed := changed + n;
    INSERT INTO build_abis (abi_tag, python_order, python_version)
    SELECT x.abi_tag, x.python_order, x.python_version
    FROM jsonb_to_recordset(abis) AS x(abi_tag text, python_order integer, python_version text)
    ON CONFLICT (abi_tag) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN changed + n > 0;
END;
$$;

-- Record ABI skips for every version with a given Requires-Python
-- ([{requires_python, abi_tag, reason}]), as computed by the master.
CREATE FUNCTION set_requires_python_skips(skips jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    INSERT INTO version_abi_skips (version_id, abi_tag, reason)
    SELECT v.version_id, x.abi_tag, x.reason
    FROM jsonb_to_recordset(skips) AS x(requires_python text, abi_tag text, reason text)
    JOIN versions v ON v.requires_python = x.requires_python
    ON CONFLICT (version_id, abi_tag) DO UPDATE SET reason = excluded.reason;
$$;

-- Bring one project up to date with PyPI: its details and every version PyPI lists
-- ([{version, released, requires_python, has_sdist, yanked, skip, abi_skips: [[abi, reason]]}]).
-- Versions PyPI no longer lists are marked removed; their builds stay on record.
CREATE FUNCTION set_project(
    pkg text, pkg_display_name text, pkg_serial bigint, pkg_summary text,
    pkg_description text, pkg_versions jsonb
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint;
BEGIN
    INSERT INTO packages AS p (package, display_name, serial, summary, description)
    VALUES (pkg, pkg_display_name, pkg_serial, pkg_summary, pkg_description)
    ON CONFLICT (package) DO UPDATE SET
        display_name = excluded.display_name, serial = excluded.serial,
        summary = excluded.summary, description = excluded.description, removed = false;

    UPDATE versions v SET removed = true
    WHERE v.package = pkg AND NOT v.removed
      AND v.version NOT IN (
          SELECT x.version FROM jsonb_to_recordset(pkg_versions) AS x(version text));

    INSERT INTO versions AS v (package, version, released, requires_python, has_sdist, yanked, skip)
    SELECT pkg, x.version, x.released, x.requires_python, x.has_sdist, x.yanked, x.skip
    FROM jsonb_to_recordset(pkg_versions) AS x(
        version text, released timestamptz, requires_python text, has_sdist boolean,
        yanked boolean, skip text)
    ON CONFLICT (package, version) DO UPDATE SET
        released = excluded.released, requires_python = excluded.requires_python,
        has_sdist = excluded.has_sdist, yanked = excluded.yanked, removed = false,
        -- an operator's skip outlives PyPI updates; the follower's own reasons do not
        skip = CASE WHEN v.skip <> '' AND excluded.skip = '' THEN v.skip ELSE excluded.skip END;

    DELETE FROM version_abi_skips s USING versions v
    WHERE s.version_id = v.version_id AND v.package = pkg;
    INSERT INTO version_abi_skips (version_id, abi_tag, reason)
    SELECT v.version_id, sk.value ->> 0, sk.value ->> 1
    FROM jsonb_to_recordset(pkg_versions) AS x(version text, abi_skips jsonb)
    JOIN versions v ON v.package = pkg AND v.version = x.version
    CROSS JOIN LATERAL jsonb_array_elements(x.abi_skips) AS sk
    WHERE sk.value ->> 0 IN (SELECT abi_tag FROM build_abis);

    FOR vid IN SELECT version_id FROM versions WHERE package = pkg LOOP
        PERFORM queue_version(vid);
    END LOOP;
END;
$$;

-- PyPI no longer lists the project: keep its record, stop building it.
CREATE FUNCTION remove_project(pkg text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE packages SET removed = true WHERE package = pkg;
    DELETE FROM build_queue q USING versions v
    WHERE q.version_id = v.version_id AND v.package = pkg;
$$;

-- Record a build attempt with its log and files ([{filename, filesize, filehash, package_tag,
-- package_version_tag, py_version_tag, abi_tag, platform_tag, requires_python,
-- dependencies: [[tool, name]]}]), then move the version's queue entry on. A filename already
-- published keeps its original record: published files are immutable.
CREATE FUNCTION log_build(
    slave_id integer, pkg text, ver text, build_abi text, build_status boolean,
    build_duration interval, build_output text, build_covers_from integer, build_files jsonb
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    vid bigint;
    bid bigint;
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
    INSERT INTO dependencies (filename, tool, dependency)
    SELECT DISTINCT x.filename, d.value ->> 0, d.value ->> 1
    FROM jsonb_to_recordset(build_files) AS x(filename text, dependencies jsonb)
    JOIN files f ON f.filename = x.filename AND f.build_id = bid
    CROSS JOIN LATERAL jsonb_array_elements(x.dependencies) AS d;

    PERFORM queue_version(vid);
    RETURN bid;
END;
$$;
