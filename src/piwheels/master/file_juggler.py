"""The File Juggler: fetches wheels from slaves in chunks and puts them in place, verified.

The Slave Driver tells it (EXPECT) which file a slave is about to send; the slave then says
HELLO on the file queue and is sent several FETCHes at once. Chunks are written at their offset
into a temporary file in ``OUTPUT/.incoming/`` and hashed as they arrive in order, so a file of
any size costs a few chunks of memory. Only a file whose size and SHA256 match what BUILT reported
is renamed into ``OUTPUT/simple/<project>/``; the Slave Driver then asks (VERIFY) how it went.

Hashing and storing happen off this task's loop (:mod:`piwheels.master_support.file_store`),
so the next chunks are fetched meanwhile: SHA-256 is the biggest cost of a transfer (see
BENCHMARKS.md), and an fsync on the loop held up every other transfer and every question from
the Slave Driver. Workers report back through a queue and a pipe the loop polls (a hashed chunk
only when the loop is waiting for one).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import zmq
from packaging.utils import canonicalize_name

from piwheels import protocols, provenance
from piwheels.heap import serve_from_heap
from piwheels.master_support.builder_trust import describe_key, load_trust, open_builder_queues
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.file_store import hash_chunk, store
from piwheels.master_support.task import Task, describe_error
from piwheels.master_support.transfers import CHUNK_SIZE, Hashing, Transfer, TransferError
from piwheels.message_codec import ProtocolError
from piwheels.protocols import Failure
from piwheels.records.builds import FileState
from piwheels.transport import Socket, UntrustedPeer, chose_routing_id

# How a slave's file connection may speak: the spec's dialect, or the original piwheels' raw
# frames (told apart by their envelope: see Socket.recv_from).
DIALECTS = (protocols.file_juggler, protocols.original.file_juggler)
WINDOW = 8  # FETCHes in flight per transfer
REFETCH_AFTER = 10.0  # seconds without a chunk before outstanding FETCHes are repeated
STORE_THREADS = 4  # files being fsynced at once
HASH_BACKLOG = 8  # chunks of a transfer waiting to be hashed before no more are fetched


class FileJuggler(Task):
    name = "File Juggler"

    def __init__(self, config: MasterConfig, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(config, context)
        # Each chunk arrives in a chunk-sized buffer that libzmq mallocs; on fresh pages each
        # time, faulting them in cost more than the rest of the transfer.
        serve_from_heap(CHUNK_SIZE)
        self.simple = Path(config.output_path) / "simple"
        self.simple.mkdir(parents=True, exist_ok=True)
        self.incoming = config.incoming_dir
        self.incoming.mkdir(exist_ok=True)
        self.trust = load_trust(config.key_dir)
        # The secure queue, and the insecure one where it is opened: a file connection's
        # address is the queue's number (one byte) and its routing id there.
        self.file_queues = open_builder_queues(
            self,
            protocols.file_juggler,
            config.file_queue,
            config.insecure_file_queue,
            self.trust,
            self.setup_file_queue,
            max_memory=config.max_memory,
            max_message_size=CHUNK_SIZE + 4096,
            peer_addresses=True,
        )
        self.fs_queue = self.socket(zmq.REP, protocols.file_juggler_control).bind(config.fs_queue)
        for number, queue in enumerate(self.file_queues):
            self.register(queue, partial(self.handle_file, queue, bytes([number])))
        self.register(self.fs_queue, self.handle_fs)
        self.every(1.0, self.refetch)
        self.transfers: dict[int, Transfer] = {}
        self.by_address: dict[bytes, Transfer] = {}
        self.storer = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="File Juggler store")
        # one thread, so each transfer's chunks are hashed in the order they were queued
        self.hasher = ThreadPoolExecutor(1, thread_name_prefix="File Juggler hash")
        # Workers report (transfer, verdict) when a file is stored, (transfer, None) when a
        # chunk is hashed; a byte on the pipe wakes the loop.
        self.reports: SimpleQueue[tuple[Transfer, str | None]] = SimpleQueue()
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.register_raw(self.wake_read, self.handle_reports)

    def once(self) -> None:
        self.remove_leftovers(time.time())

    def remove_leftovers(self, started: float) -> None:
        """Delete the temporary files of transfers a stopped master never finished (a kill
        leaves them); only those older than this master, so none of its own transfers."""
        removed = 0
        try:
            with os.scandir(self.incoming) as entries:
                for entry in entries:
                    try:
                        if entry.stat(follow_symlinks=False).st_mtime < started:
                            Path(entry.path).unlink()
                            removed += 1
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        self.log.warning("cannot remove %s: %s", entry.path, exc)
        except OSError as exc:
            self.log.warning("cannot look for unfinished transfers: %s", exc)
        if removed:
            self.log.warning("removed %d unfinished transfers left by an earlier master", removed)

    @staticmethod
    def setup_file_queue(zsock: zmq.Socket[Any]) -> None:
        # A slave that reconnects (a transfer it restarts) comes back under its own routing id;
        # without handover the old connection, not yet seen to close, would keep it out.
        zsock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # A sender has at most a window of chunks in flight: more queued is a flood, held back
        # in its own buffers rather than ours.
        zsock.setsockopt(zmq.RCVHWM, 2 * WINDOW)

    # -- the Slave Driver's requests -----------------------------------------------------------

    def handle_fs(self) -> None:
        try:
            action, data = self.fs_queue.recv()
        except ProtocolError as exc:
            self.log.error("bad request: %s", exc)
            self.fs_queue.send("ERROR", Failure("malformed", str(exc)))
            return
        try:
            if action == "EXPECT":
                self.expect(*data)
                result: Any = None
            elif action == "VERIFY":
                result = self.verify(data)
            elif action == "FORGET":
                self.forget(data)
                result = None
            elif action == "DISCARD":
                self.discard(*data)
                result = None
            elif action in ("WITHHOLD", "RELEASE"):
                self.move(*data, withhold=action == "WITHHOLD")
                result = None
            elif action == "STALLED":
                result = self.stalled(data)
            else:  # FREE
                stat = os.statvfs(self.simple)
                result = stat.f_bavail * stat.f_frsize
        except TransferError as exc:
            self.fs_queue.send("ERROR", exc.failure)
        except OSError as exc:
            self.fs_queue.send("ERROR", Failure("failed", str(exc)))
        except Exception as exc:  # a slave's file that trips us up must not end the task
            self.log.error("%s failed: %s", action, describe_error(exc))
            self.fs_queue.send(
                "ERROR", Failure("failed", f"{action} failed: {describe_error(exc)}")
            )
        else:
            self.fs_queue.send("OK", result)

    def _directory(self, package: str, filename: str) -> Path:
        directory = self.simple / canonicalize_name(package)
        # The Slave Driver checked the name already; this is the last line of defence for disk.
        if (directory / filename).parent != directory or filename in ("", ".", ".."):
            raise TransferError("refused", f"refusing to touch {filename!r} outside {directory}")
        return directory

    def expect(
        self,
        slave_id: int,
        package: str,
        file: FileState,
        slave_address: bytes,
        slave_peer: str,
        slave_key: str,
    ) -> None:
        self.forget(slave_id)
        directory = self._directory(package, file.filename)
        target = directory / file.filename
        directory.mkdir(exist_ok=True)
        temp = self.incoming / f".{file.filename}.{secrets.token_hex(4)}.part"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            # reserve the space now so a full disk fails here, not halfway through the transfer
            os.posix_fallocate(fd, 0, max(file.filesize, 1))
        except OSError as exc:
            os.close(fd)
            temp.unlink(missing_ok=True)
            why = f"no room for {file.filename} on the output disk: {exc}"
            raise TransferError("no-room", why) from None
        self.transfers[slave_id] = Transfer(
            slave_id, file, target, temp, fd, slave_address, slave_peer, slave_key
        )

    def stalled(self, slave_id: int) -> float | None:
        """Seconds since *slave_id*'s transfer last moved (began, or took a chunk)."""
        transfer = self.transfers.get(slave_id)
        return None if transfer is None else time.monotonic() - transfer.last_activity

    def discard(self, package: str, filenames: list[str]) -> None:
        """Delete verified files of a build that was not recorded: nothing stays under
        ``simple/`` that the database does not list."""
        for filename in filenames:
            (self._directory(package, filename) / filename).unlink(missing_ok=True)
            self.log.warning("deleted %s: its build was not recorded", filename)

    def move(self, package: str, filenames: list[str], *, withhold: bool) -> None:
        """Move a build's files (with what lies beside them) out of the served tree into the
        withheld directory, or back: a withheld wheel is served to no one."""
        held = self.config.withheld_dir / canonicalize_name(package)
        for filename in filenames:
            served = self._directory(package, filename)
            source, target = (served, held) if withhold else (held, served)
            target.mkdir(parents=True, exist_ok=True)
            for name in (filename, f"{filename}.metadata", f"{filename}{provenance.SUFFIX}"):
                with contextlib.suppress(FileNotFoundError):
                    (source / name).rename(target / name)
            self.log.warning("%s %s", "withheld" if withhold else "released", filename)

    def verify(self, slave_id: int) -> str:
        transfer = self.transfers.get(slave_id)
        if transfer is None:
            raise TransferError("refused", f"no transfer expected from slave {slave_id}")
        if transfer.verdict is None:
            raise TransferError(
                "failed",
                f"{transfer.file.filename} incomplete "
                f"({transfer.received} of {transfer.file.filesize} bytes)",
            )
        self.forget(slave_id)
        if transfer.verdict:
            raise TransferError("failed", transfer.verdict)
        return str(transfer.target)

    def forget(self, slave_id: int) -> None:
        transfer = self.transfers.pop(slave_id, None)
        if transfer is None:
            return
        if transfer.address is not None:
            self.by_address.pop(transfer.address, None)
        if transfer.storing:
            transfer.forgotten = True  # the worker still has the file; handle_reports cleans up
            return
        self._close(transfer)
        transfer.temp.unlink(missing_ok=True)

    # -- the slaves' side ----------------------------------------------------------------------

    def handle_file(self, queue: Socket, prefix: bytes) -> None:
        try:
            # A chunk stays in the frame it came in, written and hashed from there: each copy
            # out of it would hold up this loop (and the interpreter lock) for no purpose.
            routing_id, action, data = queue.recv_from(
                copy=False,
                dialects=DIALECTS,
                admits=self.trust.admits if queue.peer_keys and self.trust else None,
            )
        except UntrustedPeer as exc:
            if self.trust is not None and self.trust.first_refusal(exc.key):
                self.log.warning(
                    "ignored a message on the file queue from %s: its key %s is not trusted",
                    self.peer(queue),
                    describe_key(exc.key) if exc.key else "(none)",
                )
            return
        except ProtocolError as exc:
            why = "refused a message on the file queue from %s: %s"
            self.log.error(why, self.peer(queue), exc)
            return
        try:
            if action == "HELLO":
                self.begin_transfer(queue, prefix + routing_id, data)
                return
            transfer = self.by_address.get(prefix + routing_id)
            if transfer is None or transfer.verdict is not None or transfer.storing:
                self.log.debug("ignored a chunk for no transfer in progress")
                return
            if queue.peer_key != transfer.slave_key:  # its routing id, from another builder
                self.log.error("slave %d: refused a chunk from another builder", transfer.slave_id)
                return
            offset, chunk = data
            self.receive(transfer, offset, chunk)
        except Exception as exc:  # one sender's message must never end the task
            why = "refused %s from %s: %s"
            self.log.error(why, action, self.peer(queue), describe_error(exc))

    @staticmethod
    def peer(queue: Socket) -> str:
        """Who sent the message just received on *queue*, for the log."""
        return queue.peer or "a local peer"

    def begin_transfer(self, queue: Socket, address: bytes, slave_id: int) -> None:
        dialect = queue.spoken
        transfer = self.transfers.get(slave_id)
        if transfer is None or transfer.verdict is not None or transfer.storing:
            self.log.warning("slave %d said HELLO but no file is expected from it", slave_id)
            queue.send_to(address[1:], "DONE", protocol=dialect)
            return
        if not self._from_its_slave(transfer, queue, address[1:]):
            self.log.error(
                "refused a HELLO for slave %d's file from %s: not that slave's connection",
                slave_id,
                self.peer(queue),
            )
            queue.send_to(address[1:], "DONE", protocol=dialect)
            return
        if transfer.address is not None:
            self.log.warning("slave %d restarted its transfer", slave_id)
            self.by_address.pop(transfer.address, None)
            transfer.next_offset, transfer.outstanding = 0, {}
            transfer.received = 0
            transfer.hashing = Hashing()  # chunks still queued for the old one are wasted
        transfer.address, transfer.dialect = address, dialect
        self.by_address[address] = transfer
        self.log.info("slave %d: receiving %s", slave_id, transfer.file.filename)
        self.fill_window(transfer)

    @staticmethod
    def _from_its_slave(transfer: Transfer, queue: Socket, routing_id: bytes) -> bool:
        """Whether a file connection may send *transfer*'s file: only the slave told to.

        It must present the slave's builder key (none, from a slave on a plain queue). Our
        slaves also give their file connection the routing id of their request connection,
        which only they know. Others (the original piwheels slaves) get one made up by libzmq
        on each connection, unrelated: for them the file must come from the same host.
        """
        if queue.peer_key != transfer.slave_key:
            return False
        if chose_routing_id(transfer.slave_address):
            return routing_id == transfer.slave_address
        return not transfer.slave_peer or queue.peer == transfer.slave_peer

    def fill_window(self, transfer: Transfer) -> None:
        size = transfer.file.filesize
        hashing = transfer.hashing
        # Flagged before the backlog is read, so the hashing thread, which counts a chunk
        # before it reads the flag, cannot finish the last chunk unseen and leave this stalled.
        hashing.stalled = True
        if hashing.backlog >= HASH_BACKLOG:
            return  # hashing is behind: the next hashed chunk calls again
        hashing.stalled = False
        while len(transfer.outstanding) < WINDOW and transfer.next_offset < size:
            offset = transfer.next_offset
            length = min(CHUNK_SIZE, size - offset)
            transfer.outstanding[offset] = length
            transfer.next_offset += length
            self._fetch(transfer, offset, length)

    def _fetch(self, transfer: Transfer, offset: int, length: int) -> None:
        address = transfer.address
        assert address is not None
        self.file_queues[address[0]].send_to(
            address[1:], "FETCH", (offset, length), protocol=transfer.dialect
        )

    def receive(self, transfer: Transfer, offset: int, chunk: bytes | memoryview) -> None:
        expected = transfer.outstanding.get(offset)
        if expected is None or len(chunk) != expected:
            self.log.warning(
                "slave %d: unasked-for chunk at %d (%d bytes) ignored",
                transfer.slave_id,
                offset,
                len(chunk),
            )
            return
        try:
            os.pwrite(transfer.fd, chunk, offset)
        except OSError as exc:
            reason = "disk full" if exc.errno == errno.ENOSPC else str(exc)
            self.fail(transfer, f"cannot write {transfer.file.filename}: {reason}")
            return
        del transfer.outstanding[offset]
        transfer.received += len(chunk)
        transfer.last_activity = time.monotonic()
        hashing = transfer.hashing
        if offset == hashing.queued:  # in order; otherwise the stored file is hashed instead
            hashing.queued += len(chunk)
            self.hasher.submit(self._hash, transfer, hashing, chunk)
        if transfer.complete:
            self.finish(transfer)
        else:
            self.fill_window(transfer)

    def _hash(self, transfer: Transfer, hashing: Hashing, chunk: bytes | memoryview) -> None:
        """On the hashing thread."""
        if hash_chunk(transfer, hashing, chunk):
            self._report(transfer, None)

    def finish(self, transfer: Transfer) -> None:
        transfer.storing = True
        # queued behind the transfer's last chunk on the one hashing thread: by the time the
        # store starts, every chunk queued for hashing has been hashed
        self.hasher.submit(self.storer.submit, self._store, transfer)

    def _store(self, transfer: Transfer) -> None:
        """On a worker thread."""
        self._report(transfer, store(transfer))

    def _report(self, transfer: Transfer, verdict: str | None) -> None:
        self.reports.put((transfer, verdict))
        os.write(self.wake_write, b"\0")

    def handle_reports(self) -> None:
        try:
            while os.read(self.wake_read, 4096):
                pass
        except BlockingIOError:
            pass
        while not self.reports.empty():
            transfer, verdict = self.reports.get()
            if verdict is None:  # a chunk hashed: room to fetch more
                current = self.by_address.get(transfer.address or b"") is transfer
                if current and not transfer.storing and transfer.verdict is None:
                    self.fill_window(transfer)
                continue
            transfer.storing = False
            if transfer.forgotten:
                self._close(transfer)
                transfer.temp.unlink(missing_ok=True)
                if not verdict:  # in place but never to be recorded
                    transfer.target.unlink(missing_ok=True)
            elif verdict:
                self.fail(transfer, verdict)
            else:
                self._close(transfer)
                transfer.verdict = ""
                self.log.info(
                    "slave %d: %s verified (%d bytes)",
                    transfer.slave_id,
                    transfer.file.filename,
                    transfer.file.filesize,
                )
                self._done(transfer)

    def fail(self, transfer: Transfer, reason: str) -> None:
        self.log.error("slave %d: %s", transfer.slave_id, reason)
        transfer.verdict = reason
        self._close(transfer)
        transfer.temp.unlink(missing_ok=True)
        self._done(transfer)

    def _done(self, transfer: Transfer) -> None:
        address = transfer.address
        if address is not None:
            self.file_queues[address[0]].send_to(address[1:], "DONE", protocol=transfer.dialect)
            self.by_address.pop(address, None)

    def refetch(self) -> None:
        stale = time.monotonic() - REFETCH_AFTER
        for transfer in self.by_address.values():
            if transfer.last_activity < stale and transfer.outstanding:
                self.log.info(
                    "slave %d: repeating %d FETCHes", transfer.slave_id, len(transfer.outstanding)
                )
                transfer.last_activity = time.monotonic()
                for offset, length in transfer.outstanding.items():
                    self._fetch(transfer, offset, length)

    @staticmethod
    def _close(transfer: Transfer) -> None:
        if transfer.fd >= 0:
            os.close(transfer.fd)
            transfer.fd = -1

    def close(self) -> None:
        self.hasher.shutdown(wait=True)  # its last jobs may hand stores on
        self.storer.shutdown(wait=True)
        self.handle_reports()
        for slave_id in list(self.transfers):
            self.forget(slave_id)
        os.close(self.wake_read)
        os.close(self.wake_write)
        super().close()
