"""Which account runs PostgreSQL when we are root, and how that account reaches its files.

PostgreSQL refuses to run as root, so as root the embedded server runs as an unprivileged
system account: the data directory's owner when that is not root, so that a cluster keeps the
owner it was made with, else the first service account that exists. postgres opens its files by
absolute path, so every directory above them must be traversable for that account.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
from pathlib import Path

from piwheels.db.embedded import EmbeddedPostgresError

# The package's one logger, so that logging settings name the embedded server at once.
logger = logging.getLogger("piwheels.db.embedded")

# Accounts to run the server as when we are root, best first: the one made for the job, then
# pgserver's own, then the account that owns nothing.
_SERVICE_ACCOUNTS = ("postgres", "pgserver", "nobody")


def choose_account(data_dir: Path, run_as: str | None) -> pwd.struct_passwd:
    """The account to run the server in *data_dir* as: *run_as* if given, else its owner, else
    the first of postgres, pgserver and nobody. Never root."""
    owner = data_dir.stat().st_uid if data_dir.exists() else 0
    names = [run_as] if run_as else _SERVICE_ACCOUNTS
    if owner != 0 and run_as is None:
        account = pwd.getpwuid(owner)
    else:
        for name in names:
            try:
                account = pwd.getpwnam(name)
                break
            except KeyError:
                continue
        else:
            raise EmbeddedPostgresError(
                f"PostgreSQL refuses to run as root and none of the accounts {names} "
                "exists; create one (e.g. useradd --system postgres) or run as another user"
            )
    if account.pw_uid == 0:
        raise EmbeddedPostgresError(
            f"PostgreSQL refuses to run as root, and {data_dir} belongs to root: "
            "chown it (recursively) to an unprivileged account"
        )
    return account


def grant_search(path: Path, account: pwd.struct_passwd) -> None:
    """Let *account* reach *path* by adding search (x, not read) permission where missing.

    Only reached when we are root and the server runs as another account: the directories
    above a root-made data directory (pytest's, for one, is 0700) would otherwise stop the
    server at the door.
    """
    groups = {account.pw_gid} | set(os.getgrouplist(account.pw_name, account.pw_gid))
    for directory in path.parents:
        info = directory.stat()
        if info.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            logger.info("allowing %s to traverse %s", account.pw_name, directory)
            directory.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
