"""When and with what something was made: the one clock and the one version reader.

Manifests, run folders, bundles and reports all stamp UTC times with `now_iso()` and
record library versions from package metadata (`package_version`, `versions`), so the
same moment and the same library read the same everywhere, and nothing heavy is
imported to learn a version.
"""

from __future__ import annotations

import datetime as _dt
import platform
from collections.abc import Iterable
from importlib import metadata

NOT_INSTALLED = "not installed"


def now_iso() -> str:
    """The current UTC time to the second, ISO 8601: 2026-01-31T12:00:00+00:00."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def utc_stamp() -> str:
    """The current UTC time for a folder name: 20260131-120000."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")


def package_version(distribution: str) -> str | None:
    """The installed version of a distribution, None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def versions(distributions: Iterable[str]) -> dict[str, str]:
    """cnnx's and Python's versions, then each distribution's (its name with - as _)."""
    from toolkit import __version__

    found = {"cnnx": __version__, "python": platform.python_version()}
    for dist in distributions:
        found[dist.replace("-", "_")] = package_version(dist) or NOT_INSTALLED
    return found
