-- Slave ids unique for the database's lifetime (issue #21). A master took the highest id any
-- build was recorded by, plus one, at its start: a slave that connected and recorded nothing
-- gave its id to another machine after a restart, so builds.built_by could name two machines.
--
-- Ids come from a counter, a block at a time: the Slave Driver answers a HELLO without waiting
-- for the database, taking the next id of its block, and reserves the next block before this
-- one runs out. Ids a master never hands out are skipped for good; they are only names. A row
-- rather than a sequence: a sequence skips 32 of its steps (here, 32,000 ids) after every crash
-- of the server.
CREATE TABLE slave_ids (
    id   integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    next bigint  NOT NULL
);
INSERT INTO slave_ids (next) SELECT coalesce(max(built_by), 0) + 1 FROM builds;

-- The first id of a new block of 1,000 (ids first .. first + 999): enough for a farm's slaves
-- all coming back at once after a restart.
CREATE FUNCTION reserve_slave_ids() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE slave_ids SET next = next + 1000 RETURNING next - 1000;
$$;
