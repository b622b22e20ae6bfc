"""piwheels test package: never installed, since its build is always stopped."""
