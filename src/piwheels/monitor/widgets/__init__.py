"""The monitor's widgets: each renders what the app binds to it."""

from piwheels.monitor.widgets.event_log import EventLog
from piwheels.monitor.widgets.master_panel import MasterPanel
from piwheels.monitor.widgets.slave_table import SlaveTable

__all__ = ["EventLog", "MasterPanel", "SlaveTable"]
