"""The run profiles: every knob of a profile that is not a generator's own, in one typed object per profile.

A profile says how big a run is. :class:`Profile` holds what every consumer of a profile reads: the values of the
shared config sections every generator gets (``train``, ``eval``: sample counts, the classifiers' budgets, the
metrics' settings, hudlib.config), the training seeds of the ablation's main rows and of the scene study, the
downstream protocol (hudlib.downstream.protocol), and how the runner runs notebooks (per-cell timeout, hung-kernel
grace). A generator's own per-profile values (its training budget, network size, sampler and steps) live once, on
its class (``Generator.profiles``), beside the config dataclass it owns.

- ``smoke``: seconds on a CPU; used by the tests and CI. Numbers from it mean nothing about quality.
- ``quick``: a 2-core CPU, every generator in minutes (sizes chosen by measurement: docs/, benchmarks/).
- ``paper``: the paper's setting for a GPU.
"""
from __future__ import annotations

import dataclasses
import types
from typing import Any, Mapping

from .errors import DataError

__all__ = ["Profile", "PROFILES", "get_profile", "profile_names"]


def _frozen(d: Mapping) -> Mapping:
    return types.MappingProxyType({k: _frozen(v) if isinstance(v, Mapping) else v for k, v in d.items()})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Profile:
    """One run profile (module docstring).

    ``train``/``eval``: values of the shared config sections (:class:`hudlib.config.TrainConfig`,
    :class:`hudlib.config.EvalConfig`) every generator gets at this profile, before its own. ``seeds``: training
    seeds of the ablation's main rows and sampling seeds of the scene study. ``downstream``: the name of the
    downstream protocol (:data:`hudlib.downstream.protocol.PROTOCOLS`). ``cell_timeout_s``: the runner's per-cell
    execution timeout (never None: nothing waits forever). ``idle_grace_s``: a cell whose kernel reported idle but
    sent no execute reply for this long is declared hung (jupyter/nbclient#312) and its kernel is killed.
    """

    name: str
    purpose: str
    train: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    eval: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    downstream: str = "quick"
    cell_timeout_s: int = 3 * 3600
    idle_grace_s: int = 60

    def __post_init__(self):
        object.__setattr__(self, "train", _frozen(self.train))
        object.__setattr__(self, "eval", _frozen(self.eval))
        if not self.seeds or not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            raise DataError(f"seeds: expected a non-empty tuple of non-negative integers, got {self.seeds!r}")
        for name in ("cell_timeout_s", "idle_grace_s"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                raise DataError(f"{name}: expected a positive number of seconds, got {getattr(self, name)!r}")

    def replace(self, **changes) -> "Profile":
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", purpose="seconds on a CPU: tests and CI; its numbers mean nothing about quality",
        train=dict(ema_decay=0.9),
        eval=dict(n_samples=16, classifier_steps=20, max_points=1000, paper_draws=4, authors_epochs=1,
                  authors_steps_per_epoch=2, authors_pixels=1024),
        seeds=(0,), downstream="smoke", cell_timeout_s=1800),
    "quick": Profile(
        name="quick", purpose="a 2-core CPU, every generator in minutes",
        train=dict(ema_decay=0.995),
        # the authors' 16 x 256 1x1-conv classifier at ~1 MFLOP per pixel: 10 epochs of 50 batches of 4096 pixels
        # (theirs: up to 50 epochs of every window)
        eval=dict(n_samples=256, classifier_steps=600, authors_epochs=10, authors_steps_per_epoch=50,
                  authors_pixels=4096),
        seeds=(0, 1, 2), downstream="quick", cell_timeout_s=3 * 3600),
    "paper": Profile(
        name="paper", purpose="the paper's setting, for a GPU",
        train=dict(ema_decay=0.9999), eval=dict(n_samples=1024, classifier_steps=3000),
        seeds=(0, 1, 2), downstream="quick", cell_timeout_s=3 * 24 * 3600),
}


def profile_names() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    """The :class:`Profile` named ``name``; an unknown name is refused with the known ones."""
    if name not in PROFILES:
        raise DataError(f"profile: unknown profile {name!r}; expected one of {', '.join(PROFILES)}")
    return PROFILES[name]
