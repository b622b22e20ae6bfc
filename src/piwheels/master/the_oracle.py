"""The Oracle: the master's tasks' door to the database.

Several Oracles run behind Seraph; each takes one request, runs it in one transaction and
replies OK with the result or ERROR with the reason. A failing request never stops the Oracle:
if the server went away the next request reconnects. Once a minute each Oracle logs what it
spent its time on, so an operator can see which requests keep the database busy.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
import zmq

from piwheels import protocols
from piwheels.db.builds import CrossCheckShare, GiveBack
from piwheels.db.database import Database
from piwheels.master.seraph import READY
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.task import Task, describe_error
from piwheels.message_codec import ProtocolError, decode, encode
from piwheels.protocols import NO_DATA
from piwheels.transport import recv_frames, send_frames

REPORT_INTERVAL = 60.0
# libpq grows a connection's output buffer to the largest query it ever sent (doubling) and
# never shrinks it: one slave's huge build log left every Oracle holding a buffer that size for
# good (the larger part of what the master kept after the hostile campaign). After a request
# this large the Oracle takes a new connection, so what it keeps stays under twice this size.
BIG_REQUEST = 1 << 20


class TheOracle(Task):
    name = "Oracle"

    def __init__(
        self, config: MasterConfig, context: zmq.Context[Any] | None = None, *, number: int = 0
    ) -> None:
        self.name = f"Oracle {number}"
        super().__init__(config, context)
        self.db = Database(
            config.dsn,
            give_back=GiveBack(config.give_back_tries, config.give_back_delay),
            cross_checks=CrossCheckShare(config.cross_check_first, config.cross_check_share),
        )
        self.worker = self.context.socket(zmq.REQ)
        self.worker.setsockopt(zmq.LINGER, 0)
        self.worker.connect(config.oracle_workers_queue)
        self.register_raw(self.worker, self.handle_request)
        self.every(REPORT_INTERVAL, self.report)
        self.spent: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        self.requests: dict[str, Callable[[Any], Any]] = {
            "GETPKGS": lambda _: self.db.get_package_serials(),
            "GETSERIAL": lambda _: self.db.get_pypi_serial(),
            "SETSERIAL": self.db.set_pypi_serial,
            "SETPROJECTS": self.db.set_project_rows,
            "REMOVEPROJECT": self.db.remove_project,
            "GETABIS": lambda _: self.db.get_build_abis(),
            "GETQUEUE": self.db.get_queue,
            "GETHASHES": self.db.get_file_hashes,
            "QUEUED": lambda data: self.db.is_queued(*data),
            "LOGBUILD": lambda data: self.db.log_build(*data),
            "LOSTBUILD": lambda data: self.db.log_lost_build(*data),
            "OPENCHECKS": self.db.open_cross_checks,
            "CHECKED": self.db.record_cross_check,
            "WITHHOLD": self.db.withhold_build,
            "RELEASE": lambda data: self.db.release_withheld(*data),
            "REQUEUEDUE": lambda _: self.db.requeue_given_back(),
            "GETSTATS": lambda _: self.db.get_statistics(),
            "SAVEPAGES": self.db.save_pending_pages,
            "TAKEPAGES": self.db.take_pending_pages,
            "PUBLISHED": self.db.last_published,
            "SLAVEIDS": lambda _: self.db.reserve_slave_ids(),
            "PKGEXISTS": self.db.package_exists,
            "VEREXISTS": lambda data: self.db.version_exists(*data),
            "REMOVEVER": lambda data: self.db.remove_version(*data),
            "ADDBYHAND": lambda data: self.db.add_by_hand(*data),
            "SETSKIP": lambda data: self.db.set_skip(*data),
            "SETYANKED": lambda data: self.db.set_yanked(*data),
            "RETRY": lambda data: self.db.retry_failed(*data),
            "SETPRIORITY": lambda data: self.db.set_priority(*data),
            "RETRYCAUSE": lambda data: self.db.retry_cause(*data),
            "DEBINSTALLED": lambda data: self.db.debian_installed(*data),
            "LOGCURSOR": self.db.log_cursor,
            "LOGHITS": self.db.record_hits,
            "RECOUNT": lambda _: self.db.refresh_downloads(),
            "SETSTATUS": lambda data: self.db.set_project_status(*data),
            "PYPIHOLD": self.db.withhold_for_pypi,
            "PLACED": lambda data: self.db.files_placed(*data),
        }

    def once(self) -> None:
        self.worker.send(READY)

    def handle_request(self) -> None:
        frames = recv_frames(self.worker)
        if len(frames) != 3:
            self.log.error("dropping a malformed request (%d frames)", len(frames))
            self.worker.send(READY)
            return
        client, _, raw = frames
        started = time.perf_counter()
        action, reply = self._answer(raw)
        took = time.perf_counter() - started
        spent = self.spent[action]  # count, total seconds, longest
        spent[0] += 1
        spent[1] += took
        spent[2] = max(spent[2], took)
        send_frames(self.worker, [client, b"", reply])
        if len(raw) > BIG_REQUEST:
            self.db.close()  # the next request connects again (see BIG_REQUEST)

    def report(self) -> None:
        if not self.spent:
            return
        busy = sum(total for _, total, _ in self.spent.values())
        by_time = sorted(self.spent.items(), key=lambda item: -item[1][1])
        self.log.info(
            "busy %.0f%% of the last %.0fs: %s",
            100 * busy / REPORT_INTERVAL,
            REPORT_INTERVAL,
            ", ".join(
                f"{action} {n:.0f} x {1000 * total / n:.1f} ms (longest {1000 * top:.0f} ms)"
                for action, (n, total, top) in by_time
            ),
        )
        self.spent.clear()

    def _answer(self, raw: bytes) -> tuple[str, bytes]:
        try:
            action, data = decode(protocols.oracle, raw)
        except ProtocolError as exc:
            self.log.error("bad request: %s", exc)
            return "(malformed)", self._failure("malformed", str(exc))
        return action, self._carry_out(action, data)

    def _carry_out(self, action: str, data: Any) -> bytes:
        try:
            result = self.requests[action](data if data is not NO_DATA else None)
        except psycopg.OperationalError as exc:
            # the server restarted or went away: drop the connection, the next request reconnects
            self.log.error("%s failed, database unavailable: %s", action, exc)
            self.db.close()
            return self._failure("unavailable", f"database unavailable: {exc}")
        except psycopg.errors.NoDataFound as exc:
            # a package or version that does not exist: the asker's mistake, said plainly
            message = exc.diag.message_primary or str(exc)
            self.log.warning("%s: %s", action, message)
            return self._failure("not-found", message)
        except psycopg.Error as exc:
            message = exc.diag.message_primary or str(exc)
            self.log.error("%s failed: %s", action, message)
            return self._failure("refused", f"{action} failed: {message}")
        except Exception as exc:  # a request carrying a peer's data must never end the Oracle
            why = describe_error(exc)
            self.log.error("%s failed: %s", action, why)
            return self._failure("failed", f"{action} failed: {why}")
        return encode(protocols.oracle, "OK", result)

    def _failure(self, kind: str, message: str) -> bytes:
        return encode(protocols.oracle, "ERROR", protocols.oracle.failure(kind, message))

    def close(self) -> None:
        self.worker.close(linger=0)
        self.db.close()
        super().close()
