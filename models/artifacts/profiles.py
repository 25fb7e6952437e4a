"""Model profiles: `fast` and `accurate`, and which registry a command loads.

Its own module, without torch at import, because every model-loading command's options name the
choices (`--profile`), and `finpulse --help` must not wait for torch.

The two profiles are the two shipped registries (models/artifacts/registry.py). `auto` takes
accurate on a GPU and fast on a CPU: the accurate profile's mpnet costs several times the compute
per post, which a GPU absorbs and two CPU cores do not (figures: models/cards/profiles.md).
"""

from __future__ import annotations

from finpulse.pipeline.runtime.settings import ModelSettings

PROFILES = {"fast": "default", "accurate": "accurate"}  # profile -> shipped registry name
PROFILE_CHOICES = (*PROFILES, "auto")


def pick_profile(profile: str, device: str | None = None) -> str:
    """`fast` or `accurate`: `auto` is accurate on a GPU (`device`, or CUDA being present when the
    device is not known yet) and fast on a CPU. Pure but for that CUDA check."""
    if profile in PROFILES:
        return profile
    if profile != "auto":
        raise ValueError(f"unknown model profile {profile!r}; use {', '.join(PROFILE_CHOICES)}")
    if device is None or device == "auto":
        import torch

        cuda = torch.cuda.is_available()
    else:
        cuda = device.startswith("cuda")
    return "accurate" if cuda else "fast"


def chosen_registry(registry: str | None, profile: str | None = None, device: str | None = None) -> str:
    """The registry a command loads: `registry` (or FINPULSE_REGISTRY) if given, else the profile's
    (`profile`, else FINPULSE_PROFILE, else auto) shipped one."""
    settings = ModelSettings()
    return str(registry or settings.registry or PROFILES[pick_profile(profile or settings.profile, device)])
