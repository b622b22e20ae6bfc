"""The master's access to PostgreSQL: one method per question or change, one transaction each.

Reads are plain SELECTs; every write calls one of the schema's SECURITY DEFINER functions,
which is all the master's role may do (see migrations/0001_create.sql). The methods are
grouped by job in the modules beside this one: following PyPI (projects.py, its rows in
project_rows.py), the ABIs and the queue (queue.py), builds and files (builds.py), the web
output (web_output.py), operators' repairs (repairs.py), the access logs' findings (hits.py),
PyPI's removals and statuses (removals.py).
"""

from __future__ import annotations

from piwheels.db.builds import BuildRecords, CrossCheckShare, GiveBack
from piwheels.db.hits import HitRecords
from piwheels.db.projects import ProjectRecords
from piwheels.db.queue import FarmQueue
from piwheels.db.removals import Removals
from piwheels.db.repairs import Repairs
from piwheels.db.web_output import WebOutput


class Database(ProjectRecords, FarmQueue, BuildRecords, WebOutput, Repairs, HitRecords, Removals):
    """A connection to the piwheels database, reopened after the server restarts."""

    def __init__(
        self,
        dsn: str,
        *,
        check_schema: bool = True,
        give_back: GiveBack | None = None,
        cross_checks: CrossCheckShare | None = None,
    ) -> None:
        super().__init__(dsn, check_schema=check_schema)
        self.give_back = give_back or GiveBack()
        self.cross_checks = cross_checks or CrossCheckShare()
