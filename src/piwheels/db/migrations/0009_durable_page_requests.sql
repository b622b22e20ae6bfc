-- Page requests that survive a crash (issue #21). The pages of a recorded build were asked for
-- through the master's queues and saved only at a clean stop: a master killed just after
-- recording a build lost the request, and the project's index never listed its wheel, nor did
-- its page show the build or link its log. A database error while the page writer worked lost
-- the request too.
--
-- Now recording a build records the need for its project's pages in the same transaction (a
-- trigger, so imports and every other way a build is recorded do too), and the request stays
-- until the page writer has written the pages: it reads how many times the pages were asked
-- for before it reads the project, and afterwards deletes the request only if no one asked
-- again meanwhile (a build recorded while it wrote is written next time).
ALTER TABLE pending_pages ADD COLUMN requests bigint NOT NULL DEFAULT 1;

CREATE FUNCTION request_project_pages() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO pending_pages (kind, package)
    SELECT 'BOTH', v.package FROM versions v WHERE v.version_id = NEW.version_id
    ON CONFLICT (kind, package) DO UPDATE SET requests = pending_pages.requests + 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER builds_request_pages AFTER INSERT ON builds
    FOR EACH ROW EXECUTE FUNCTION request_project_pages();

CREATE OR REPLACE FUNCTION save_pending_pages(pages jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    INSERT INTO pending_pages (kind, package)
    SELECT DISTINCT p.value ->> 0, p.value ->> 1 FROM jsonb_array_elements(pages) AS p
    ON CONFLICT (kind, package) DO UPDATE SET requests = pending_pages.requests + 1;
$$;

-- Every saved request. A project's stay until its pages are written (pages_written); the
-- others (the search index and the like, redone at every start anyway) are forgotten here.
DROP FUNCTION take_pending_pages();
CREATE FUNCTION take_pending_pages() RETURNS TABLE (kind varchar, package varchar)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH taken AS (
        DELETE FROM pending_pages WHERE kind NOT IN ('BOTH', 'PROJECT') RETURNING kind, package
    )
    SELECT kind, package FROM taken
    UNION ALL
    SELECT kind, package FROM pending_pages WHERE kind IN ('BOTH', 'PROJECT');
$$;

-- The requests for a project's pages as the page writer saw them before it read the project:
-- {kind: requests}.
CREATE FUNCTION page_requests(pkg text) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce(jsonb_object_agg(kind, requests), '{}') FROM pending_pages
    WHERE package = pkg;
$$;

-- The pages those requests asked for are written: forget each, unless asked for again since.
CREATE FUNCTION pages_written(pkg text, seen jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DELETE FROM pending_pages p
    USING jsonb_each_text(seen) AS s
    WHERE p.package = pkg AND p.kind = s.key AND p.requests = s.value::bigint;
$$;
