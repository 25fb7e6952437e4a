"""finpulse's errors: one base, a few families, and the exit code each maps to.

Library code raises these and never exits: only `finpulse.pipeline.cli` turns a `FinpulseError`
into a message on stderr and its `exit_code` (httpx's `_exceptions.py` is the model: one
documented hierarchy, so a caller can catch everything finpulse means to raise with one class).
Errors that also belong to a standard family keep it as a second base (`DataFormatError` is a
`ValueError` too), so existing `except ValueError` callers keep working.

    FinpulseError                  exit 1 unless a subclass says otherwise
    ├── UsageError                 exit 2: a flag, setting or input path is wrong; the message says what to change
    │   └── NoInputFiles
    ├── ConfigError                exit 2: a settings value, secrets file or routes file is invalid
    ├── LakeError                  the lake cannot be used as asked
    │   ├── LakeLocked             another writer holds the lake's lease
    │   └── LakeNotWritable        full, read-only or missing permissions at start-up
    ├── SourceError                where records come from
    │   ├── BrokerUnavailable      no broker, or the topics are missing, after the wait
    │   ├── ExpansionServiceError  --source xlang without a usable Java expansion service
    │   └── PartitionsChanged      exit 75 (EX_TEMPFAIL): partitions were added; a restart reads them
    ├── ModelLoadError             (finpulse.models.artifacts.artifact) an artifact or registry cannot be loaded
    ├── BaseUnavailable            (finpulse.models.artifacts.bases) a base encoder package is missing
    ├── DataFormatError            (finpulse.models.data) a training or evaluation file is malformed
    ├── AlertStoreError            (finpulse.pipeline.alerts.evaluate) the alert store is inconsistent
    └── ReadOnlyViolation          (finpulse.pipeline.lake.sql_guard) `finpulse query` refused a statement
"""

from __future__ import annotations

EX_USAGE = 2
EX_TEMPFAIL = 75  # sysexits.h: a temporary condition; a supervisor's restart fixes it


class FinpulseError(Exception):
    """Base of every error finpulse raises on purpose. The message says what to do."""

    exit_code: int = 1


class UsageError(FinpulseError):
    exit_code = EX_USAGE


class NoInputFiles(UsageError):
    pass


class ConfigError(FinpulseError):
    exit_code = EX_USAGE


class LakeError(FinpulseError):
    pass


class LakeLocked(LakeError):
    pass


class LakeNotWritable(LakeError):
    pass


class SourceError(FinpulseError):
    pass


class BrokerUnavailable(SourceError):
    pass


class ExpansionServiceError(SourceError):
    pass


class PartitionsChanged(SourceError):
    exit_code = EX_TEMPFAIL
