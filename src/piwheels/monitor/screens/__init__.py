"""The monitor's screens beyond the main one."""

from piwheels.monitor.screens.confirm import ConfirmScreen

__all__ = ["ConfirmScreen"]
