-- Slave ids unique for the database's lifetime (issue #21). A master took the highest id any
-- build was recorded by, plus one, at its start: a slave that connected and recorded nothing
-- gave its id to another machine after a restart, so builds.built_by could name two machines.
--
-- Ids come from a sequence, a block at a time: the Slave Driver answers a HELLO without waiting
-- for the database, taking the next id of its block, and reserves the next block before this
-- one runs out. Ids a master never hands out are skipped for good; they are only names.
CREATE SEQUENCE slave_ids INCREMENT BY 100 MINVALUE 1;
SELECT setval('slave_ids', coalesce((SELECT max(built_by) FROM builds), 0) + 1, false);

-- The first id of a new block of 100 (ids first .. first + 99).
CREATE FUNCTION reserve_slave_ids() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT nextval('slave_ids');
$$;
