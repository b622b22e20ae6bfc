"""Log lines below WARNING are written in batches, a warning at once, and all by the end."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from piwheels.cli import log_output
from piwheels.cli.log_output import LazyFileHandler, LazyStreamHandler


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("piwtest.lazy")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def wait_for(text: str, path: Path, seconds: float = 5.0) -> float:
    started = time.monotonic()
    while text not in path.read_text():
        assert time.monotonic() - started < seconds, f"{text!r} never written"
        time.sleep(0.01)
    return time.monotonic() - started


def test_info_lines_gather_and_are_written_soon_after(
    logger: logging.Logger, tmp_path: Path
) -> None:
    path = tmp_path / "master.log"
    handler = LazyFileHandler(path, encoding="utf-8")
    log_output._handlers.discard(handler)  # the flusher waits (so this test can look)
    logger.addHandler(handler)
    logger.info("first")
    logger.info("second")
    assert "first" not in path.read_text()  # not one write per line
    log_output._handlers.add(handler)
    assert wait_for("second", path) < 5 * log_output.FLUSH_INTERVAL
    assert path.read_text().splitlines() == ["first", "second"]


def test_a_warning_is_written_at_once_with_the_lines_before_it(
    logger: logging.Logger, tmp_path: Path
) -> None:
    path = tmp_path / "master.log"
    logger.addHandler(LazyFileHandler(path, encoding="utf-8"))
    logger.info("before")
    logger.warning("trouble")
    assert path.read_text().splitlines() == ["before", "trouble"]


def test_closing_writes_everything(logger: logging.Logger, tmp_path: Path) -> None:
    path = tmp_path / "master.log"
    handler = LazyFileHandler(path, encoding="utf-8")
    logger.addHandler(handler)
    for n in range(100):
        logger.debug("line %d", n)
    logger.removeHandler(handler)
    handler.close()
    assert len(path.read_text().splitlines()) == 100


def test_a_stream_is_flushed_by_the_background_thread(logger: logging.Logger) -> None:
    stream = io.StringIO()
    written: list[str] = []

    class Watched(io.StringIO):
        def flush(self) -> None:
            written.append(stream.getvalue())

    stream = Watched()
    logger.addHandler(LazyStreamHandler(stream))
    logger.info("hello")
    deadline = time.monotonic() + 5
    while not any("hello" in text for text in written):
        assert time.monotonic() < deadline, "never flushed"
        time.sleep(0.01)
