"""What the slave reports about its machine, read from stand-ins for /proc and /sys."""

from __future__ import annotations

from datetime import UTC, datetime

from piwheels.slave import hostinfo

PI4_CPUINFO = """\
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41

Hardware	: BCM2835
Revision	: c03111
Serial		: 10000000e3b2f1a5
Model		: Raspberry Pi 4 Model B Rev 1.1
"""

PC_CPUINFO = """\
processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) CPU
"""


def test_board_info_of_a_pi(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(PI4_CPUINFO)
    assert hostinfo.board_info(cpuinfo) == ("c03111", "10000000e3b2f1a5")


def test_board_info_elsewhere(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(PC_CPUINFO)
    assert hostinfo.board_info(cpuinfo) == ("", "")
    assert hostinfo.board_info(tmp_path / "missing") == ("", "")


def test_memory_info(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  8000000 kB\nMemFree:  100000 kB\nMemAvailable:  6000000 kB\n")
    assert hostinfo.memory_info(meminfo) == (8000000 * 1024, 6000000 * 1024)
    # Without the file, the numbers still come from somewhere (sysconf).
    total, free = hostinfo.memory_info(tmp_path / "missing")
    assert 0 < free <= total


def test_cpu_temperature_prefers_the_cpu_zone(tmp_path):
    for name, kind, temp in [
        ("thermal_zone0", "acpitz", "27800"),
        ("thermal_zone1", "x86_pkg_temp", "51000"),
    ]:
        zone = tmp_path / name
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(temp + "\n")
    assert hostinfo.cpu_temperature(tmp_path) == 51.0


def test_cpu_temperature_of_a_pi_and_of_nothing(tmp_path):
    zone = tmp_path / "thermal_zone0"
    zone.mkdir()
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("48312\n")
    assert hostinfo.cpu_temperature(tmp_path) == 48.312
    assert hostinfo.cpu_temperature(tmp_path / "missing") == 0.0


def test_os_info():
    name, version = hostinfo.os_info()
    assert name
    assert isinstance(version, str)


def test_slave_stats(tmp_path):
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    stats = hostinfo.slave_stats(tmp_path, now)
    assert stats.timestamp == now
    assert 0 < stats.disk_free <= stats.disk_total
    assert 0 < stats.mem_free <= stats.mem_total
    assert stats.load_avg >= 0
