"""The one interface every generator implements (HUD, the controls, the baselines to come).

A generator is fitted on a scene under a profile, lives in a run directory keyed by its training config, and draws
``(n, bands, 32, 32)`` patches in the scene's normalised units. What differs between generators is a method or a
class attribute of :class:`Generator`; callers never probe with ``hasattr`` or compare model names.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import RunConfig, make_config
from ..utils import atomic_torch_save, atomic_write_text, barrier, dist_info, sha256_files

__all__ = ["Generator", "NetworkGenerator", "ComplexitySpec", "run_dir_for"]


@dataclasses.dataclass
class ComplexitySpec:
    """What Table IV measures of a generator.

    Attributes:
        net: the network evaluated ``steps`` times per sample (HUD: the U-Net; VAE: the decoder; MPRNet: all of it).
        inputs: ``inputs(batch, px, device) -> tuple of tensors``, example arguments of ``net`` for ``batch``
            samples of ``px`` × ``px`` (shapes only matter: Table IV runs them on the meta device).
        steps: evaluations of ``net`` per sample.
        extra_flops_per_px, extra_params: what runs once per sample outside ``net`` (HUD's decoder) and its size.
        train_net, train_inputs: what one training step runs forward and backward, when more than ``net`` (the
            VAE's encoder + decoder, the GAN's generator + critic); its parameters are the ones counted.
    """

    net: torch.nn.Module
    inputs: Callable[[int, int, Any], tuple]
    steps: int
    extra_flops_per_px: int = 0
    extra_params: int = 0
    train_net: torch.nn.Module | None = None
    train_inputs: Callable[[int, int, Any], tuple] | None = None


def run_dir_for(cfg: RunConfig, out_dir) -> Path:
    """``out_dir/<scene>/<model>/<profile>-<hash of the training config>``."""
    return Path(out_dir) / cfg.scene / cfg.model / f"{cfg.profile}-{cfg.training_hash()}"


class Generator:
    """Base class: config handling, run directories, the sampling entry point and the weights hash.

    Subclasses set ``name`` (and ``has_abundances`` when they produce abundances X̂) and implement ``_fit``,
    ``_load_state``, ``_sample`` and ``artefact_files``; diffusion generators also override ``sampling_key``,
    ``sampler_settings`` and ``complexity_spec``.
    """

    name = "?"
    has_abundances = False  # sample(..., return_abundances=True) returns X̂ (n, d, h, w) rather than None
    # variants evaluated beside the default: {tag: config overrides}; tables show each as a row "<name> [<tag>]".
    # Overrides of sampling-only keys reuse the default's weights; others train their own run (UD/UBF: the authors'
    # decoding, p = 5 abundances)
    variants: dict[str, dict] = {}
    authors_variant: str | None = None  # the variant closest to how the paper's authors ran it (None: the default)

    def __init__(self):
        self.config_: RunConfig | None = None
        self.run_dir_: Path | None = None
        self._hashed: Path | None = None  # run directory whose weights hash is cached in _weights_hash
        self._weights_hash: str | None = None

    # ---------------------------------------------------------------------------------------------- fitting
    def _resolve_config(self, scene, profile, overrides) -> RunConfig:
        cfg = profile if isinstance(profile, RunConfig) else make_config(scene.name, self.name, profile, overrides)
        if cfg.scene != scene.name or cfg.model != self.name:
            raise ValueError(f"profile: config is for {cfg.model}/{cfg.scene}, not {self.name}/{scene.name}")
        return cfg

    def fit(self, scene, profile="quick", out_dir="runs", resume: bool = False, overrides=None,
            device: str = "auto", progress: bool = True):
        """Train on ``scene`` (or reuse the finished run with the same config). Returns self."""
        cfg = self._resolve_config(scene, profile, overrides)
        run_dir = run_dir_for(cfg, out_dir)
        self.config_, self.run_dir_ = cfg, run_dir
        if (run_dir / "DONE").is_file():
            self._load_state(run_dir, scene)
            return self
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", cfg.to_json())
        self._fit(scene, cfg, run_dir, resume=resume, device=device, progress=progress)
        if dist_info()[0] == 0:
            atomic_write_text(run_dir / "DONE", "finished\n")
        return self

    @classmethod
    def load(cls, run_dir, scene=None) -> "Generator":
        """Rebuild a fitted generator from its finished run directory."""
        run_dir = Path(run_dir)
        if not (run_dir / "DONE").is_file():
            raise FileNotFoundError(f"{run_dir}: run not finished (no DONE marker); resume it with --resume")
        self = cls()
        self.config_ = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        self.run_dir_ = run_dir
        self._load_state(run_dir, scene)
        return self

    # ---------------------------------------------------------------------------------------------- sampling
    def sample(self, n: int, random_state=0, *, device: str = "auto", progress: bool = False,
               return_abundances: bool = False, **options):
        """Ŷ ``(n, bands, 32, 32)`` float32 in the scene's normalised units; with ``return_abundances`` the pair
        ``(Ŷ, X̂)`` where X̂ is ``(n, d, 32, 32)`` or None for a generator without abundances.
        ``options`` are sampler settings (see :meth:`sampler_settings`)."""
        Y, X = self._sample(int(n), random_state, device=device, progress=progress, **options)
        return (Y, X) if return_abundances else Y

    def endmember_matrix(self) -> np.ndarray | None:
        """The endmembers ``(bands, d)`` float64 a fitted generator decodes abundances with (HUD: VCA's; UD/UBF:
        the learned decoder's); None for a generator without a linear mixing decoder."""
        return None

    def sampling_key(self) -> str:
        """Tag of the sampler settings, part of every sample and result cache key."""
        return "direct"

    def sampler_settings(self) -> dict | None:
        """The default sampler's settings for the record of a result (None: no iterative sampler)."""
        return None

    def weights_hash(self) -> str:
        """Content hash of everything sampling reads (:meth:`artefact_files`): results and sample caches are keyed
        by it, so a retrained model is never scored with another model's numbers. Read once per fitted state
        (``fit``/``load`` set ``run_dir_``; the files of a finished run do not change)."""
        if self._hashed != self.run_dir_ or self._weights_hash is None:
            self._hashed, self._weights_hash = self.run_dir_, self.weights_hash_at(self.run_dir_)
        return self._weights_hash

    @classmethod
    def weights_hash_at(cls, run_dir) -> str | None:
        """:meth:`weights_hash` of the finished run in ``run_dir`` without loading it (None if not finished)."""
        run_dir = Path(run_dir)
        files = cls.artefact_files(run_dir)
        if not (run_dir / "DONE").is_file() or not all(f.is_file() for f in files):
            return None
        return sha256_files(files)

    @classmethod
    def training_iterations(cls, cfg: RunConfig) -> dict[str, int]:
        """Iterations of each training stage under ``cfg`` (``{"": steps}`` for a one-stage model; keys are the
        ``stages`` of ``train_info.json`` where a model has several)."""
        return {"": cfg.train.steps}

    @classmethod
    def complexity_spec(cls, cfg: RunConfig, bands: int, d: int) -> ComplexitySpec | None:
        """Table IV's network for this generator under ``cfg`` (None: no network, listed with zeros)."""
        return None

    # ---------------------------------------------------------------------------------------------- subclass hooks
    @classmethod
    def artefact_files(cls, run_dir: Path) -> list[Path]:
        """The files of a run directory that sampling reads."""
        raise NotImplementedError

    def _fit(self, scene, cfg: RunConfig, run_dir: Path, resume: bool, device: str, progress: bool) -> None:
        raise NotImplementedError

    def _load_state(self, run_dir: Path, scene=None) -> None:
        raise NotImplementedError

    def _sample(self, n: int, random_state, device: str, progress: bool, **options
                ) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError


class NetworkGenerator(Generator):
    """A generator whose networks come out of :func:`hudlib.train.train_loop` on the scene's cube (the baselines).

    Subclasses implement :meth:`_plan` (networks, optimisers, step function: what training needs),
    :meth:`_build_nets` (the networks sampling needs, by name, for a config and band count) and ``_sample``; set
    ``sample_nets`` to the names in the plan that sampling reads (``"net.sub"``: the submodule ``sub`` of the plan's
    network ``net``, e.g. the VAE's decoder). ``fit`` writes ``weights.pt`` (those networks,
    the EMA where the plan keeps one, and ``scene_sha256`` of the cube: the weights hash changes with the data);
    ``_load_state`` rebuilds ``nets_``; ``train_info_`` holds the training info when fitted in this process.
    """

    sample_nets: tuple[str, ...] = ()

    def _plan(self, scene, cfg: RunConfig, device: torch.device):
        raise NotImplementedError

    @classmethod
    def _build_nets(cls, cfg: RunConfig, bands: int) -> dict[str, torch.nn.Module]:
        raise NotImplementedError

    @classmethod
    def artefact_files(cls, run_dir):
        return [Path(run_dir) / "weights.pt"]

    def _fit(self, scene, cfg, run_dir, resume, device, progress):
        from ..train import train_loop  # train imports models' building blocks, not the registry

        info, plan, emas = train_loop(cfg, lambda dev: self._plan(scene, cfg, dev), scene.cube, run_dir,
                                      device=device, resume=resume, progress=progress)
        if dist_info()[0] == 0:
            cube_sha = hashlib.sha256(np.ascontiguousarray(scene.cube).tobytes()).hexdigest()
            nets = {k: _sampled_module(plan, emas, k).state_dict() for k in self.sample_nets}
            atomic_torch_save({"nets": nets, "bands": int(scene.cube.shape[0]), "scene_sha256": cube_sha,
                               "step": info["steps"]}, Path(run_dir) / "weights.pt")
        barrier()  # every rank then reads weights.pt
        self.train_info_ = info
        self._load_state(run_dir, scene)

    @staticmethod
    def _decode_latents(decode, latent: int, out_shape: tuple, n: int, random_state, device,
                        batch_size: int = 256) -> np.ndarray:
        """``decode(z)`` of ``n`` latents z ~ N(0, I) ``(m, latent)``, drawn in batches from one
        ``torch.Generator`` seeded with ``random_state`` (the same samples for a seed on any batch size);
        ``(n, *out_shape)`` float32."""
        from ..utils import resolve_device

        device = resolve_device(device)
        gen = torch.Generator().manual_seed(int(random_state))
        z = torch.randn(n, latent, generator=gen)
        with torch.no_grad():
            out = [decode(z[i:i + batch_size].to(device)).float().cpu().numpy() for i in range(0, n, batch_size)]
        return np.concatenate(out) if out else np.empty((0, *out_shape), np.float32)

    def _load_state(self, run_dir: Path, scene=None):
        st = torch.load(Path(run_dir) / "weights.pt", map_location="cpu", weights_only=True)
        self.nets_ = self._build_nets(self.config_, int(st["bands"]))
        for k, m in self.nets_.items():
            m.load_state_dict(st["nets"][k])
            m.eval()
        self.bands_ = int(st["bands"])


def _sampled_module(plan, emas: dict, name: str) -> torch.nn.Module:
    """The module ``name`` of a finished training plan (its EMA where kept); ``"net.sub"`` is a submodule."""
    net, _, sub = name.partition(".")
    m = emas[net] if net in emas else plan.nets[net]
    return m.get_submodule(sub) if sub else m
