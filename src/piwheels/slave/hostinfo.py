"""What a slave tells the master about its machine: HELLO's description and IDLE/BUSY's stats.

Everything here is best effort: a value the host does not expose is reported as ``""`` or ``0``
rather than failing, since it is shown to administrators and never drives a decision of ours.
"""

from __future__ import annotations

import os
import platform
import shutil
from datetime import datetime
from pathlib import Path

from piwheels.records.slaves import SlaveStats

__all__ = ["board_info", "cpu_temperature", "memory_info", "os_info", "slave_stats"]

_CPUINFO = Path("/proc/cpuinfo")
_MEMINFO = Path("/proc/meminfo")
_THERMAL = Path("/sys/class/thermal")
# Thermal zone types that measure the CPU itself, by vendor: bcm2835_thermal / cpu-thermal on a
# Raspberry Pi, x86_pkg_temp on Intel, k10temp-like "cpu" names elsewhere. Other zones
# (acpitz, battery, wifi) are the board's, not the CPU's.
_CPU_ZONE_HINTS = ("cpu", "soc", "x86_pkg", "bcm2835")


def os_info() -> tuple[str, str]:
    """The operating system's name and release, e.g. ``("Debian GNU/Linux", "12 (bookworm)")``."""
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        return platform.system(), platform.release()
    name = release.get("NAME") or platform.system()
    # Rolling distributions (Arch, Debian sid) have no VERSION; the next best still tells admins
    # which snapshot a slave runs.
    version = release.get("VERSION") or release.get("VERSION_ID") or release.get("BUILD_ID", "")
    return name, version


def board_info(cpuinfo: Path = _CPUINFO) -> tuple[str, str]:
    """The board's revision code and serial number, ``("", "")`` where the kernel gives none.

    A Raspberry Pi's firmware puts both in /proc/cpuinfo (``Revision : c03111``); PCs do not.
    """
    revision = serial = ""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return revision, serial
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "Revision":
            revision = value.strip()
        elif key == "Serial":
            serial = value.strip()
    return revision, serial


def _meminfo(meminfo: Path) -> dict[str, int]:
    """/proc/meminfo's figures, in bytes (none where it cannot be read)."""
    fields: dict[str, int] = {}
    try:
        for line in meminfo.read_text().splitlines():
            key, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit():
                factor = 1024 if parts[1:] == ["kB"] else 1
                fields[key] = int(parts[0]) * factor
    except OSError:
        pass
    return fields


def swap_info(meminfo: Path = _MEMINFO) -> tuple[int, int]:
    """Total and free swap, in bytes (0 and 0 without swap, or where it cannot be read)."""
    fields = _meminfo(meminfo)
    return fields.get("SwapTotal", 0), fields.get("SwapFree", 0)


def memory_info(meminfo: Path = _MEMINFO) -> tuple[int, int]:
    """Total RAM and RAM available to new processes, in bytes."""
    fields = _meminfo(meminfo)
    total = fields.get("MemTotal")
    # MemAvailable counts reclaimable caches, which a build can have; MemFree does not (and is
    # always near zero on a busy Linux), so it is only the fallback for old kernels.
    free = fields.get("MemAvailable", fields.get("MemFree"))
    if total is None or free is None:
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page
    return total, free


def cpu_temperature(thermal: Path = _THERMAL) -> float:
    """The CPU's temperature in degrees Celsius, or 0.0 where there is no sensor to read."""
    try:
        zones = sorted(thermal.glob("thermal_zone*"))
    except OSError:
        return 0.0
    preferred = [z for z in zones if _zone_type(z).startswith(_CPU_ZONE_HINTS)]
    for zone in preferred or zones[:1]:
        try:
            return int((zone / "temp").read_text().strip()) / 1000
        except (OSError, ValueError):
            continue
    return 0.0


def _zone_type(zone: Path) -> str:
    try:
        return (zone / "type").read_text().strip().lower()
    except OSError:
        return ""


def slave_stats(work_root: Path, now: datetime) -> SlaveStats:
    """The resources reported with IDLE and BUSY; the disk is the one *work_root* is on."""
    disk = shutil.disk_usage(work_root)
    mem_total, mem_free = memory_info()
    swap_total, swap_free = swap_info()
    return SlaveStats(
        timestamp=now,
        disk_total=disk.total,
        # What an unprivileged build can still write, not counting root's reserved blocks.
        disk_free=disk.free,
        mem_total=mem_total,
        mem_free=mem_free,
        load_avg=os.getloadavg()[0],
        cpu_temp=cpu_temperature(),
        swap_total=swap_total,
        swap_free=swap_free,
    )
