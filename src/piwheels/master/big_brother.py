"""Big Brother: gathers the farm's statistics and has the home page and search index refreshed.

The database's figures come through the Oracle; the output disk is measured here, since the
web output is what fills it.
"""

from __future__ import annotations

from typing import Any

import zmq

from piwheels.master_support.config import MasterConfig
from piwheels.master_support.db_client import DatabaseError, DbClient
from piwheels.master_support.status import StatusReporter
from piwheels.master_support.task import Task
from piwheels.master_support.web_requests import PageRequests, with_output_disk
from piwheels.records.projects import Statistics


class BigBrother(Task):
    name = "Big Brother"

    def __init__(self, config: MasterConfig, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(config, context)
        self.db = DbClient(config.oracle_queue, self.context)
        self.pages = PageRequests.connect(self, config.web_queue)
        self.status = StatusReporter.connect(self, config.status_internal_queue)
        self.every(config.stats_interval, self.update_home)
        self.every(config.search_interval, self.update_search)
        self.latest: Statistics | None = None

    def once(self) -> None:
        self.update_home()

    def update_home(self) -> None:
        try:
            self.latest = with_output_disk(self.db.get_statistics(), self.config.output_path)
        except (DatabaseError, OSError) as exc:
            self.log.error("cannot gather statistics: %s", exc)
            return
        self.pages.send("HOME", self.latest)
        self.status.send("STATS", self.latest)

    def update_search(self) -> None:
        self.pages.send("SEARCH")

    def close(self) -> None:
        self.db.close()
        super().close()
