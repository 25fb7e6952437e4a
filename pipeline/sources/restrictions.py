"""Restriction tracking shared by the Kafka and archive sources."""

from __future__ import annotations

from apache_beam.io.restriction_trackers import OffsetRestrictionTracker


class CheckpointOnlyTracker(OffsetRestrictionTracker):
    """Allows the runner's checkpoint (fraction 0) but never a parallel split of one source.

    Each source (partition or file) must commit its ranges in order; two bundles working on
    two halves of the same source could commit out of order.
    """

    def try_split(self, fraction_of_remainder):  # type: ignore[override]
        if fraction_of_remainder != 0:
            return None
        return super().try_split(0)
