-- The page requests saved at a stop, taken at the next start in parts a message can hold.
--
-- A Secretary stopping with a page of every project held (after a lost output disk, say, at
-- PyPI's scale a million) saved them all, but take_pending_pages (0009) answered with all of
-- them at once, more than a reply may list: they could never be taken. Now the first call
-- (after nothing: '', '') takes the requests that are not a project's (forgetting them, as
-- before) with the first `most` of the projects'; each next call the `most` after the last
-- one given, in (kind, package) order, until none is left.
DROP FUNCTION take_pending_pages();
CREATE FUNCTION take_pending_pages(after_kind text, after_package text, most integer)
RETURNS TABLE (kind varchar, package varchar)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH taken AS (
        DELETE FROM pending_pages p
        WHERE p.kind NOT IN ('BOTH', 'PROJECT') AND after_kind = '' AND after_package = ''
        RETURNING p.kind, p.package
    )
    SELECT t.kind, t.package FROM taken t
    UNION ALL
    (SELECT p.kind, p.package FROM pending_pages p
     WHERE p.kind IN ('BOTH', 'PROJECT') AND (p.kind, p.package) > (after_kind, after_package)
     ORDER BY p.kind, p.package
     LIMIT most);
$$;
