-- A wheel's dependencies may also name a shared library that no Debian package owned on the
-- slave that built it (by its path): the original piwheels slaves report those (their tool
-- "" on the wire), and the project page lists them apart from what `apt install` can get.
ALTER TABLE dependencies DROP CONSTRAINT dependencies_tool_check;
ALTER TABLE dependencies ADD CONSTRAINT dependencies_tool_check
    CHECK (tool IN ('pip', 'apt', 'library'));
