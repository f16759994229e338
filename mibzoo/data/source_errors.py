"""What can go wrong when fetching raw data (`mibzoo.data.sources`): one source failing, the package
index being unreachable, no source at all, a damaged cache file."""
from mibzoo.data import cache

# The environment variable that narrows the sources tried (comma-separated).
ENV_SOURCES = "MIBZOO_DATA_SOURCES"


class SourceFailure(Exception):
    """One source could not provide a group; the message says why."""


class PackageIndexUnreachable(SourceFailure):
    """The package index could not be reached (no network, proxy or DNS failure)."""


class DataUnavailableError(RuntimeError):
    """No source could provide a raw group.

    Attributes:
        group: the raw group name ("mnist", "svhn", ...).
        attempts: list of ``(source, reason)`` in the order tried.
        failures: list of the :class:`SourceFailure` exceptions, same order.
    """

    def __init__(self, group, attempts, failures, raw_dir, manual):
        self.group = group
        self.attempts = attempts
        self.failures = failures
        lines = [f"no source could provide the '{group}' data. Tried, in order:"]
        lines += [f"  - {source}: {reason}" for source, reason in attempts]
        lines.append(f"To provide it by hand, {manual.format(raw_dir=raw_dir)}.")
        lines.append(f"(The data directory is chosen by data_dir=, else ${cache.ENV_DATA_DIR}, else "
                     f"{cache.DEFAULT_DATA_DIR}; sources by sources= or ${ENV_SOURCES}.)")
        super().__init__("\n".join(lines))

    @property
    def index_unreachable(self):
        """True if the package-index source failed because the index could not be reached."""
        return any(isinstance(f, PackageIndexUnreachable) for f in self.failures)


class DataCacheWarning(UserWarning):
    """A cache file was damaged and is being prepared or fetched again."""
