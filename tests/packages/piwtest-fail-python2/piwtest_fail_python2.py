"""piwheels test package: never installed, since its setup.py is Python 2."""

__version__ = "0+template"
