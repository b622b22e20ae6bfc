"""Reading the static web site's access logs (nginx's or Apache's "combined" format) into the
downloads and page hits ``piw-logger`` sends the master.

- :mod:`.reading`: a log's lines, with offsets to resume from and an identity that survives
  rotation and compression;
- :mod:`.lines`: one line into its fields (:class:`~.lines.AccessLine`), or
  :class:`~.lines.BadLine`;
- :mod:`.clients`: the User-Agent header into who asked (:class:`~.clients.Client`);
- :mod:`.hits`: which lines count, and as what (:class:`~.hits.Hit`).

The log is written by the server but its content is the clients': every field is treated as
hostile, and a line that is not understood is refused or not counted, never guessed at.
"""

from piwheels.access_logs.clients import Client, parse_user_agent
from piwheels.access_logs.hits import Hit, HitKind, classify
from piwheels.access_logs.lines import AccessLine, BadLine, parse_line
from piwheels.access_logs.reading import LogFile, open_log

__all__ = [
    "AccessLine",
    "BadLine",
    "Client",
    "Hit",
    "HitKind",
    "LogFile",
    "classify",
    "open_log",
    "parse_line",
    "parse_user_agent",
]
