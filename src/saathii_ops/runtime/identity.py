"""Who runs saathii-ops: the user name recorded by `jobs pause` and written into cron files."""

from __future__ import annotations

import getpass
import os


def user_name() -> str:
    """This process's user name. A container run under an arbitrary UID (OpenShift,
    Kubernetes runAsUser) has no passwd entry for it and no LOGNAME: getpass raises,
    and the numeric uid stands in (chown and cron accept it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
