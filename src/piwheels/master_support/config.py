"""The master's settings, as the tasks see them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from piwheels import defaults

INCOMING = ".incoming"  # in the output directory: see MasterConfig.incoming_dir

DEFAULT_PACKAGES = ("six", "packaging", "markupsafe", "pyyaml", "wrapt")


@dataclass
class MasterConfig:
    dsn: str
    output_path: Path
    build_abis: list[str]  # set in the database at the start; the tasks ask it (GETABIS)
    pypi_simple: str = defaults.PYPI_SIMPLE
    pypi_json: str = defaults.PYPI_JSON
    # where slaves fetch sdists from (sent in ACK); defaults to pypi_simple
    slave_index: str | None = None
    packages: list[str] = field(default_factory=list)  # empty: follow all of PyPI
    pypi_interval: float = 60.0
    queue_interval: float = 5.0
    queue_head: int = 1000  # queue entries per ABI the Slave Driver holds in memory
    oracles: int = 3
    # Requests to the database and the File Juggler still unanswered beyond which idle slaves
    # are told to SLEEP: every build handed out adds to them, so more builds would only make
    # every slave's replies wait longer (by Little's law) without recording any more of them.
    max_backlog: int = 12
    # below this many free bytes on the output disk, slaves are told to SLEEP
    min_free_space: int = 1 << 30
    # Above this much resident memory, the builder queues' connections are ended, freeing what
    # libzmq holds for them (a peer can hold a message open and grow it: queue_guard.py). A
    # master at PyPI's scale with 500 slaves holds a few hundred MB.
    max_memory: int = 2 << 30
    # where users reach the output (the install lines on the pages); scripts/farm serves here
    public_url: str = defaults.PUBLIC_URL
    # how users reach the operator (an e-mail or web address), for the FAQ; empty: the FAQ
    # says to write to the farm's operator
    contact: str = ""
    slave_timeout: timedelta = timedelta(minutes=15)  # silence before a slave is dropped
    # silence before a building slave is dropped: it says BUSY every 10 s (the original's 5-10 s)
    busy_timeout: timedelta = timedelta(minutes=1)
    # a build failing for a passing cause (the slave lost, the network ...) goes back to the
    # queue after give_back_delay, doubled before each next try, and is failed after this many
    give_back_tries: int = 3
    give_back_delay: timedelta = timedelta(minutes=10)
    # Cross-checks: another builder of the ABI, with another key, builds again the first
    # builds of every builder key and this share of the others; its wheels' hashes must be
    # the published ones'. More checks catch a dishonest builder sooner, at the cost of builds.
    cross_check_first: int = 3
    cross_check_share: float = 0.02
    # A wheel its builders disagree on is taken out of the index, into withheld_path (default:
    # beside the output, OUTPUT-withheld), until an operator decides: piw-add --release puts
    # it back, piw-remove has the version built again.
    withhold_disagreements: bool = False
    withheld_path: Path | None = None
    # A release or project PyPI removed, or a project it quarantines (PEP 792), is withheld
    # the same way once it has been so this long (0: at once): a grace for PyPI's second
    # thoughts, such as a release deleted by mistake and uploaded again.
    removal_grace: timedelta = timedelta(0)
    slave_queue: str = defaults.SLAVE_QUEUE
    file_queue: str = defaults.FILE_QUEUE
    # The master's key pair and its trusted builders' keys (master_support/builder_trust.py):
    # with them the two queues above are CurveZMQ servers that admit only trusted builders;
    # without, they are plain, open to anyone who can reach them. piw-master always has them.
    key_dir: Path | None = None
    # Plain queues beside the secure ones, for builders that cannot speak CurveZMQ (the
    # original piwheels slaves); not opened unless given.
    insecure_slave_queue: str | None = None
    insecure_file_queue: str | None = None
    control_queue: str = defaults.CONTROL_QUEUE
    status_queue: str = defaults.STATUS_QUEUE
    import_queue: str = defaults.IMPORT_QUEUE
    log_queue: str = defaults.LOG_QUEUE
    # the master's internal queues; addresses so a task could later live in another process
    oracle_queue: str = "inproc://oracle"
    oracle_workers_queue: str = "inproc://oracle-workers"
    builds_queue: str = "inproc://builds"
    fs_queue: str = "inproc://fs"
    web_queue: str = "inproc://web"  # producers -> the Secretary
    status_internal_queue: str = "inproc://status"  # tasks -> the main thread -> monitors
    slave_commands_queue: str = "inproc://slave-commands"  # the main thread -> Slave Driver
    scribe_queue: str = "inproc://scribe"  # the Secretary -> the Scribe
    # how long the Secretary holds a page request so a burst of them becomes one write
    page_delay: float = 1.0
    stats_interval: float = 60.0  # Big Brother's refresh of the home page
    # The index root lists every project: rewritten at most this often, and less often when
    # writing it takes long (the Scribe's ROOT_DUTY). pip never reads it: a project's own index
    # page is written at once.
    root_interval: float = 10.0
    search_interval: float = 300.0  # and of the search index
    # The Hit Counter counts again the last 30 days of downloads this often, as days pass
    # (popularity in the queue, the home page's top); and has a downloaded project's page
    # rewritten with its new figures at most this often (a busy site downloads most projects
    # every hour: their pages are not rewritten each time).
    downloads_interval: float = 3600.0
    download_pages_interval: float = 6 * 3600.0
    task_control_queue: str = "inproc://control"
    master_control_queue: str = "inproc://master-control"

    @property
    def withheld_dir(self) -> Path:
        output = Path(self.output_path)
        return self.withheld_path or output.with_name(f"{output.name}-withheld")

    @property
    def incoming_dir(self) -> Path:
        """Where the File Juggler writes files as they arrive: one directory, on the output's
        disk (each is renamed into ``simple/<project>/`` once verified), hidden from the web
        server as every dot-name is. A start removes what a killed master left there by
        listing it, where leftovers beside the targets took a walk of every project's
        directory (80 s at PyPI's scale)."""
        return Path(self.output_path) / INCOMING

    @property
    def index_for_slaves(self) -> str:
        return self.slave_index or self.pypi_simple
