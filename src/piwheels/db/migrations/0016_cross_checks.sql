-- Cross-checked builds (#19): a second builder of the same ABI, with another key, builds again
-- a share of the builds (the first builds of every key, and a random share after that), and
-- the hashes of the wheels it made are compared with the published ones. Builds are
-- reproducible (the slaves set SOURCE_DATE_EPOCH), so honest builders agree.
--
-- Verdicts: pending (no checker yet); agreed (a checker made the same wheels); disagreed (it
-- made others: until a third builder breaks the tie, the published wheels are suspect);
-- unreproducible (three builders, three results: the backend does not build reproducibly, so
-- no alarm); uncheckable (checkers could not build it). A disagreement is settled by a third
-- builder: if it agrees with the published wheels the first checker was the odd one out
-- (agreed), if with the first checker the publisher was (disagreed, for good).
CREATE TABLE cross_checks (
    build_id      bigint       PRIMARY KEY REFERENCES builds ON DELETE CASCADE,
    requested_at  timestamptz  NOT NULL DEFAULT now(),
    verdict       varchar(20)  NOT NULL DEFAULT 'pending' CHECK (verdict IN
                      ('pending', 'agreed', 'disagreed', 'unreproducible', 'uncheckable')),
    -- each check in turn: {"key": fingerprint, "built": bool, "files": {filename: sha256}}
    checks        jsonb        NOT NULL DEFAULT '[]',
    decided_at    timestamptz
);
CREATE INDEX cross_checks_open ON cross_checks (build_id) WHERE verdict IN ('pending', 'disagreed');

-- After a build by a builder with a key is recorded: whether it is to be checked, and if so
-- the request. Only successful builds with files, and never by the master's own key (imports).
CREATE FUNCTION request_cross_check(bid bigint, first_builds integer, share float8)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    builder text;
    earlier bigint;
BEGIN
    SELECT o.builder_key INTO builder FROM build_origins o
    JOIN builds b USING (build_id)
    WHERE o.build_id = bid AND b.status AND o.builder_key <> '' AND o.label <> 'piw-import'
      AND EXISTS (SELECT 1 FROM files f WHERE f.build_id = bid);
    IF builder IS NULL THEN
        RETURN false;
    END IF;
    SELECT count(*) INTO earlier FROM build_origins o JOIN builds b USING (build_id)
    WHERE o.builder_key = builder AND b.status AND o.build_id < bid;
    IF earlier >= first_builds AND random() >= share THEN
        RETURN false;
    END IF;
    INSERT INTO cross_checks (build_id) VALUES (bid) ON CONFLICT DO NOTHING;
    RETURN true;
END;
$$;

-- The checks to hand out: the build, what to build, and the keys that may not check it (its
-- builder's, and those that checked it already).
CREATE FUNCTION open_cross_checks(max_checks integer)
RETURNS TABLE (build_id bigint, package text, version text, abi_tag text, excluded text[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT c.build_id, v.package, v.version, b.abi_tag,
           array_append(ARRAY(SELECT x ->> 'key' FROM jsonb_array_elements(c.checks) AS x),
                        o.builder_key)
    FROM cross_checks c
    JOIN builds b USING (build_id)
    JOIN versions v USING (version_id)
    JOIN build_origins o USING (build_id)
    WHERE c.verdict IN ('pending', 'disagreed')
      -- a disagreement waits for one tie-break (two tries at most), then stands
      AND (c.verdict = 'pending'
           OR (jsonb_array_length(c.checks) < 3
               AND (SELECT count(*) FROM jsonb_array_elements(c.checks) AS x
                    WHERE (x ->> 'built')::boolean) < 2))
    ORDER BY c.build_id
    LIMIT max_checks;
$$;

-- A checker's result: its key, whether it built, and the wheels it made ({filename: sha256}).
-- Returns the verdict as it now stands.
CREATE FUNCTION record_cross_check(bid bigint, checker text, built boolean, made jsonb)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    published jsonb;
    current cross_checks;
    results jsonb;
    failures integer;
BEGIN
    SELECT * INTO current FROM cross_checks WHERE build_id = bid FOR UPDATE;
    IF NOT FOUND OR current.verdict NOT IN ('pending', 'disagreed') THEN
        RETURN coalesce(current.verdict, 'none');
    END IF;
    SELECT coalesce(jsonb_object_agg(filename, filehash), '{}') INTO published
    FROM files WHERE build_id = bid;
    UPDATE cross_checks
    SET checks = checks || jsonb_build_array(
            jsonb_build_object('key', checker, 'built', built, 'files', made))
    WHERE build_id = bid
    RETURNING checks INTO results;
    IF NOT built THEN
        SELECT count(*) INTO failures FROM jsonb_array_elements(results) AS x
        WHERE NOT (x ->> 'built')::boolean;
        IF failures >= 2 AND current.verdict = 'pending' THEN
            UPDATE cross_checks SET verdict = 'uncheckable', decided_at = now()
            WHERE build_id = bid;
            RETURN 'uncheckable';
        END IF;
        RETURN current.verdict;
    END IF;
    IF made = published THEN
        UPDATE cross_checks SET verdict = 'agreed', decided_at = now() WHERE build_id = bid;
        RETURN 'agreed';
    END IF;
    IF current.verdict = 'pending' THEN
        UPDATE cross_checks SET verdict = 'disagreed', decided_at = now() WHERE build_id = bid;
        RETURN 'disagreed';
    END IF;
    -- the tie-break: agreeing with the first checker confirms the disagreement for good
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(results) AS x
               WHERE (x ->> 'built')::boolean AND x -> 'files' = made
                 AND x ->> 'key' <> checker) THEN
        UPDATE cross_checks SET decided_at = now() WHERE build_id = bid;
        RETURN 'disagreed';
    END IF;
    UPDATE cross_checks SET verdict = 'unreproducible', decided_at = now() WHERE build_id = bid;
    RETURN 'unreproducible';
END;
$$;

-- A build whose wheels other builders did not make is withheld, where the operator asked for
-- it (piw-master --withhold-disagreements): its files stay on record, marked, and are moved
-- out of the served tree until the operator decides (piw-add --release, or piw-remove).
ALTER TABLE files ADD COLUMN withheld boolean NOT NULL DEFAULT false;

CREATE FUNCTION withhold_build(bid bigint) RETURNS SETOF text
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE files SET withheld = true WHERE build_id = bid AND NOT withheld RETURNING filename;
$$;

CREATE FUNCTION release_withheld(pkg text, ver text) RETURNS SETOF text
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE files AS f SET withheld = false
    FROM builds b JOIN versions v USING (version_id)
    WHERE f.build_id = b.build_id AND v.package = pkg AND v.version = ver AND f.withheld
    RETURNING f.filename;
$$;
