-- Pages the Secretary had not yet passed to the Scribe when the master stopped: saved at stop,
-- redone (and cleared) at the next start, so no page is left stale by a restart.

CREATE TABLE pending_pages (
    kind    varchar(20)  NOT NULL,  -- BOTH (index and project page), PROJECT, HOME, SEARCH, ...
    package varchar(200) NOT NULL DEFAULT '',
    PRIMARY KEY (kind, package)
);

CREATE FUNCTION save_pending_pages(pages jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    INSERT INTO pending_pages (kind, package)
    SELECT p.value ->> 0, p.value ->> 1 FROM jsonb_array_elements(pages) AS p
    ON CONFLICT DO NOTHING;
$$;

-- Hand back every saved request and forget them, in one step.
CREATE FUNCTION take_pending_pages() RETURNS TABLE (kind varchar, package varchar)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DELETE FROM pending_pages RETURNING kind, package;
$$;
