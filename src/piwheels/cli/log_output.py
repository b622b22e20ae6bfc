"""Log lines of a daemon (piw-master): a warning or worse written at once, the rest in batches.

Python's handlers flush after every line: a system call each, and with it the GIL handed
round the master's threads. When 500 slaves connect at once the master logs a line per HELLO
and per build handed out, and the replies to that crowd waited about half as long again as
with those lines off (bench_slaves' paced run: the start's HELLOs answered in a median of
85 ms, 55 ms without the Slave Driver's lines; the p99 of all replies 144 ms against 74 ms).
Here lines below WARNING gather for at most FLUSH_INTERVAL and one background thread writes
them out; a WARNING or worse goes out at once with everything before it, and every line is
out when the process exits normally (logging.shutdown). A process killed outright loses at
most FLUSH_INTERVAL of INFO lines.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from typing import Any, TextIO

FLUSH_INTERVAL = 0.25

_handlers: weakref.WeakSet[_LazyFlush] = weakref.WeakSet()
_flusher_started = threading.Lock()
_flusher: threading.Thread | None = None


class _LazyFlush(logging.StreamHandler):  # type: ignore[type-arg]
    """The flush after each record is left to the flusher thread."""

    def flush(self) -> None:
        """Called after every record: nothing now (see :meth:`flush_now`)."""

    def flush_now(self) -> None:
        logging.StreamHandler.flush(self)

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if record.levelno >= logging.WARNING:
            self.flush_now()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # a stream closed under us
            self.flush_now()
        super().close()


class LazyStreamHandler(_LazyFlush):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            # stderr writes each line as it ends otherwise, whatever the handler does
            reconfigure(line_buffering=False)
        _watch(self)


class LazyFileHandler(_LazyFlush, logging.FileHandler):
    def __init__(self, filename: Any, **kwargs: Any) -> None:
        logging.FileHandler.__init__(self, filename, **kwargs)
        _watch(self)


def _watch(handler: _LazyFlush) -> None:
    global _flusher
    _handlers.add(handler)
    with _flusher_started:
        if _flusher is None:
            _flusher = threading.Thread(target=_flush_forever, name="log-flusher", daemon=True)
            _flusher.start()


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_INTERVAL)
        for handler in list(_handlers):
            # a closed stream, a full disk: nothing to be done from here, and the next
            # record's own write will say so through logging's error handling
            with contextlib.suppress(OSError, ValueError):
                handler.flush_now()
