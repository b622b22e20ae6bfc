"""The named records that several layers share: the slaves, the master's tasks, the database,
the web output and the monitor all speak in these, and none of them owns them.

Nothing here imports anything of piwheels but :mod:`piwheels.failures` (a build's diagnosis):
every other folder may import from here, and this folder from none of them.

- :mod:`.builds`: a build's result and its wheels, as slaves report them and the database keeps
  them; where a (version, ABI) stands.
- :mod:`.slaves`: what a slave says about itself, and what the master knows of it.
- :mod:`.projects`: what a project's pages and the home page are made from.
- :mod:`.status`: what the status queue tells monitors.
"""
