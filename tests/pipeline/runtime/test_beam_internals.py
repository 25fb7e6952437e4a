"""The Beam internals we patch are where the patches expect them, and a moved one fails loudly."""

import pytest

from finpulse.pipeline.runtime import beam_internals
from finpulse.pipeline.runtime.beam_internals import (
    INTERNALS,
    BeamInternalsChanged,
    Internal,
    check_beam_internals,
    problems,
)
from finpulse.schemas.errors import FinpulseError


def test_every_patched_internal_matches_the_installed_beam():
    assert problems() == []
    check_beam_internals()  # no error on the pinned version


def test_the_list_covers_what_the_patches_touch():
    paths = {i.path for i in INTERNALS}
    assert {"consolidate_monitoring_infos", "FnApiRunner._get_bundle_manager",
            "ParallelBundleManager.process_bundle", "BundleManager.process_bundle"} <= paths


def test_a_renamed_attribute_raises_naming_the_beam_version_and_the_attribute():
    moved = (Internal(beam_internals.FN_RUNNER, "consolidate_monitoring_infos_v2", why="beam_patches"),)
    with pytest.raises(BeamInternalsChanged) as err:
        check_beam_internals(moved)
    message = str(err.value)
    assert "apache-beam 2.77" in message and "consolidate_monitoring_infos_v2 is gone" in message
    assert isinstance(err.value, FinpulseError)


def test_a_changed_signature_or_missing_field_is_reported():
    changed = (Internal(beam_internals.FN_RUNNER, "BundleManager.process_bundle", parameters=("self", "inputs", "outputs")),
               Internal(beam_internals.FN_RUNNER, "ParallelBundleManager.__init__", uses=("_num_threads",)))
    found = problems(changed)
    assert len(found) == 2
    assert "expected ('self', 'inputs', 'outputs')" in found[0]
    assert "no longer sets _num_threads" in found[1]


def test_patching_checks_first(monkeypatch):
    from finpulse.pipeline.runtime import beam_patches

    monkeypatch.setattr(beam_patches, "_PATCHED", False)
    monkeypatch.setattr(beam_patches, "check_beam_internals", lambda: (_ for _ in ()).throw(BeamInternalsChanged("moved")))
    with pytest.raises(BeamInternalsChanged):
        beam_patches.bound_fn_api_runner_metrics()
