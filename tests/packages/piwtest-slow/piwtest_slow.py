"""piwheels test package: slow to build, quick to use."""

__version__ = "0+template"
