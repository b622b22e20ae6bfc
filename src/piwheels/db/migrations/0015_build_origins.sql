-- What a wheel's signed provenance names (#19): the sdist it was built from, as the index
-- listed it, and the builder that built it.
--
-- The sdist is the one PyPI's JSON API lists for the version (its URL and SHA256), recorded by
-- the Cloud Gazer with the version, beside set_projects (0010) as set_yank_reasons (0014) is.
ALTER TABLE versions
    ADD COLUMN sdist_url varchar(2000) NOT NULL DEFAULT '',
    ADD COLUMN sdist_sha256 varchar(64) NOT NULL DEFAULT '';

-- batch: as set_projects takes it; each version may carry sdist_url and sdist_sha256.
CREATE FUNCTION set_sdists(batch jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE versions AS v
    SET sdist_url = left(coalesce(y.sdist_url, ''), 2000),
        sdist_sha256 = left(coalesce(y.sdist_sha256, ''), 64)
    FROM jsonb_to_recordset(batch) AS x(package text, versions jsonb)
    CROSS JOIN LATERAL jsonb_to_recordset(x.versions)
        AS y(version text, sdist_url text, sdist_sha256 text)
    WHERE v.package = x.package AND v.version = y.version
      AND (v.sdist_url, v.sdist_sha256)
          IS DISTINCT FROM (coalesce(y.sdist_url, ''), coalesce(y.sdist_sha256, ''));
$$;

-- Who built a build: the builder's key (its fingerprint; '' for a builder on an insecure
-- queue) and what it said of itself in HELLO. Builds recorded before this migration, and lost
-- builds, have none.
CREATE TABLE build_origins (
    build_id        bigint       PRIMARY KEY REFERENCES builds ON DELETE CASCADE,
    builder_key     varchar(60)  NOT NULL,
    label           varchar(255) NOT NULL,
    os_name         varchar(255) NOT NULL,
    os_version      varchar(255) NOT NULL,
    py_version_tag  varchar(100) NOT NULL,
    platform_tag    varchar(100) NOT NULL
);

CREATE FUNCTION record_origin(bid bigint, origin jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    INSERT INTO build_origins (build_id, builder_key, label, os_name, os_version,
                               py_version_tag, platform_tag)
    SELECT bid, o.builder_key, left(o.label, 255), left(o.os_name, 255), left(o.os_version, 255),
           left(o.py_version_tag, 100), left(o.platform_tag, 100)
    FROM jsonb_to_record(origin) AS o(builder_key text, label text, os_name text,
         os_version text, py_version_tag text, platform_tag text);
$$;
