"""piwheels: a build farm that follows PyPI and turns sdists into wheels for several ABIs."""

__version__ = "0.1.0"
