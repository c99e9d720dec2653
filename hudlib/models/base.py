"""The one interface every generator implements, and the two bases most generators share.

A generator is fitted on a scene under a profile, lives in a run directory keyed by its training config, and draws
``(n, bands, 32, 32)`` patches in the scene's normalised units. It owns its configuration: ``sections`` (the config
dataclasses it reads besides ``train`` and ``eval``), ``profiles`` (their values per profile) and
``scene_overrides``. What differs between generators is a method or a class attribute of :class:`Generator`; callers
never probe with ``hasattr`` or compare model names (roles live on the registry, :mod:`hudlib.models`).

- :class:`NetworkGenerator`: networks trained by :func:`hudlib.train.train_loop` from a model's training plan.
- :class:`DiffusionGenerator`: a U-Net and a :class:`~hudlib.diffusion.GaussianDiffusion` on a latent; owns the
  batched sampling loop and the sampler options (HUD, HUD-asrun, UD, UBF).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import DiffusionConfig, RunConfig, UNetConfig, make_config
from ..diffusion import ETA_SAMPLERS, SAMPLERS, STEPPED_SAMPLERS
from ..errors import DataError
from ..weights import SUFFIX, load_weights, save_weights, weights_file
from ..runstore import reuse_or_install, run_dir_for
from ..utils import atomic_write_text, barrier, dist_info, resolve_device, sha256_files

__all__ = ["Generator", "NetworkGenerator", "DiffusionGenerator", "ComplexitySpec", "run_dir_for"]


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


class Generator:
    """Base class: config handling, run directories, the sampling entry point and the weights hash.

    Subclasses set ``name`` (and ``has_abundances`` when they produce abundances X̂), their config (``sections``,
    ``profiles``, ``scene_overrides``) and implement ``_fit``, ``_load_state``, ``_sample`` and ``artefact_files``.
    """

    name = "?"
    has_abundances = False  # sample(..., return_abundances=True) returns X̂ (n, d, h, w) rather than None
    sections: dict[str, type] = {}  # config sections besides train/eval: {name: dataclass}; they key the weights
    profiles: dict[str, dict[str, dict]] = {}  # {profile: {section: {field: value}}} over the dataclass defaults
    scene_overrides: dict[str, dict[str, dict]] = {}  # {scene: {section: {field: value}}}, after the profile's
    sampler_options: tuple[str, ...] = ()  # keyword options sample() accepts (none: no iterative sampler)
    # variants evaluated beside the default: {tag: config overrides}; tables show each as a row "<name> [<tag>]".
    # Overrides of sampling-only keys reuse the default's weights; others train their own run (UD/UBF: the authors'
    # decoding, p = 5 abundances)
    variants: dict[str, dict] = {}
    authors_variant: str | None = None  # the variant closest to how the paper's authors ran it (None: the default)

    def __init__(self, config: RunConfig | None = None):
        if config is not None and (not isinstance(config, RunConfig) or config.model != self.name):
            raise DataError(f"config: expected a RunConfig of {self.name} (hudlib.config.make_config(scene, "
                            f"{self.name!r}, profile)), got {config!r}")
        self.config = config  # given at construction (scikit-learn's parameters); what fit() uses by default
        self.config_: RunConfig | None = None
        self.run_dir_: Path | None = None
        self._hashed: Path | None = None  # run directory whose weights hash is cached in _weights_hash
        self._weights_hash: str | None = None

    # ---------------------------------------------------------------------------------------------- fitting
    def _resolve_config(self, scene, profile, overrides) -> RunConfig:
        if self.config is not None and profile is not None and profile != self.config \
                and profile != self.config.profile:
            raise DataError(f"profile: {self.name} was constructed with its config ({self.config.profile}); "
                            f"fit(scene) takes no other profile ({profile!r})")
        if self.config is not None and overrides:
            raise DataError("overrides: the generator was constructed with its config; put them in that config")
        if self.config is not None:
            profile = self.config
        cfg = profile if isinstance(profile, RunConfig) else make_config(scene.name, self.name, profile or "quick",
                                                                         overrides)
        if cfg.scene != scene.name or cfg.model != self.name:
            raise ValueError(f"profile: config is for {cfg.model}/{cfg.scene}, not {self.name}/{scene.name}")
        return cfg

    def fit(self, scene, profile=None, out_dir="runs", resume: bool = True, overrides=None,
            device: str = "auto", progress: bool = True, shipped: bool = True):
        """Train on ``scene`` with the config given at construction (else ``profile``, a name or a
        :class:`~hudlib.config.RunConfig`, default ``quick``, with ``overrides``), or reuse the finished run with the same config, or install the shipped checkpoint of
        that config (:func:`hudlib.runstore.reuse_or_install`; not with ``shipped=False``, nor when ``$HUD_RETRAIN``
        names this generator); an interrupted run resumes from its last checkpoint unless ``resume=False``. Returns
        self."""
        cfg = self._resolve_config(scene, profile, overrides)
        run_dir = run_dir_for(cfg, out_dir)
        self.config_, self.run_dir_ = cfg, run_dir
        if reuse_or_install(cfg, out_dir, shipped):
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
        cfg = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        self = cls(cfg)
        self.config_ = cfg
        self.run_dir_ = run_dir
        self._load_state(run_dir, scene)
        return self

    def save(self, directory) -> Path:
        """Write this fitted generator as a finished run directory that :func:`hudlib.models.from_pretrained`
        loads: its artefact files, ``config.json``, the training record and ``DONE``, into a temporary folder
        renamed into place (nothing half-written). Returns the directory."""
        import shutil

        if self.run_dir_ is None:
            raise DataError(f"{self.name}: not fitted; call fit() or from_pretrained() first")
        dest = Path(directory)
        if dest.exists():
            raise DataError(f"{dest}: exists already; expected a new directory")
        tmp = dest.with_name(f".{dest.name}.saving")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for f in [*type(self).artefact_files(self.run_dir_),
                  *(self.run_dir_ / n for n in ("train_info.json", "losses.json") if (self.run_dir_ / n).is_file())]:
            shutil.copy2(f, tmp / f.name)
        atomic_write_text(tmp / "config.json", self.config_.to_json())
        atomic_write_text(tmp / "DONE", "finished\n")
        tmp.rename(dest)
        return dest

    # ---------------------------------------------------------------------------------------------- sampling
    def sample(self, n: int, random_state=0, *, device: str = "auto", progress: bool = False,
               return_abundances: bool = False, **options):
        """Ŷ ``(n, bands, 32, 32)`` float32 in the scene's normalised units; with ``return_abundances`` the pair
        ``(Ŷ, X̂)`` where X̂ is ``(n, d, 32, 32)`` or None for a generator without abundances.
        ``options`` are sampler settings (:attr:`sampler_options`; None = the run's own); any other is refused."""
        Y, X = self._sample(int(n), random_state, device=device, progress=progress, **self.sampler_overrides(options))
        return (Y, X) if return_abundances else Y

    synthesizes = True  # False: no whole-scene synthesis (a generator conditioned on real crops)
    tilings: tuple[str, ...] = ("naive",)  # the tilings synthesize() offers

    def synthesize(self, height: int, width: int, random_state=0, *, stride: int | None = None,
                   tiling: str = "naive", device: str = "auto", progress: bool = False, **options):
        """A scene ``(Ŷ (bands, H, W), X̂ (d, H, W) or None)`` of any size. Here naive tiling only: independent
        patches side by side (the canvas rounded up to whole patches, then cropped), the control that shows seams;
        :class:`DiffusionGenerator` overrides it with overlapped tiling in the latent."""
        size = self.check_canvas(height, width, stride, tiling)
        rows, cols = -(-int(height) // size), -(-int(width) // size)
        Y, X = self.sample(rows * cols, random_state, device=device, progress=progress, return_abundances=True,
                           **options)
        return tuple(None if a is None else _mosaic(a, rows, cols)[:, :height, :width] for a in (Y, X))

    def check_canvas(self, height, width, stride=None, tiling: str = "naive") -> int:
        """The window (the training patch side) after checking a :meth:`synthesize` request; one-line errors."""
        from ..diffusion import TILINGS

        if not self.synthesizes:
            raise ValueError(f"{self.name}: synthesize is not defined for a generator conditioned on real crops")
        size = self.config_.train.patch_size
        if tiling not in TILINGS:
            raise ValueError(f"tiling: expected one of {', '.join(TILINGS)}, got {tiling!r}")
        if tiling not in self.tilings:
            raise ValueError(f"tiling: {self.name} has no iterative sampler, so only {', '.join(self.tilings)} "
                             f"tiling; got {tiling!r}")
        for name, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < size:
                raise ValueError(f"{name}: expected an integer of at least the window {size}, got {v!r}")
        if stride is not None and (isinstance(stride, bool) or not isinstance(stride, (int, np.integer))
                                   or not 0 < stride <= size):
            raise ValueError(f"stride: expected an integer in [1, {size}] (the window), got {stride!r}")
        if tiling == "naive" and stride not in (None, size):
            raise ValueError(f"stride: naive tiling uses stride = window = {size}, got {stride!r}")
        return size

    def sampler_overrides(self, options: dict) -> dict:
        """``options`` without the ones left at None; a one-line error for an option this generator has not."""
        given = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(given) - set(self.sampler_options))
        if unknown:
            accepts = ", ".join(self.sampler_options) or "none: it has no iterative sampler"
            raise ValueError(f"{self.name}: unknown sampler option(s) {', '.join(unknown)}; it accepts {accepts}")
        return given

    def endmember_matrix(self) -> np.ndarray | None:
        """The endmembers ``(bands, d)`` float64 a fitted generator decodes abundances with (HUD: VCA's; UD/UBF:
        the learned decoder's); None for a generator without a linear mixing decoder."""
        return None

    def sampling_key(self, **options) -> str:
        """Tag of the sampler settings (the run's, with ``options`` applied), part of every sample and result
        cache key."""
        self.sampler_overrides(options)
        return "direct"

    def sampler_settings(self, **options) -> dict | None:
        """The sampler's settings that ``sample(**options)`` runs with, for the record of a result (None: no
        iterative sampler)."""
        self.sampler_overrides(options)
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
    def unsupported(cls, scene, cfg: RunConfig) -> str | None:
        """Why this generator cannot be trained on ``scene`` (a :class:`hudlib.data.Scene`) under ``cfg``, in one line,
        or None. The main job leaves such a pair out and prints the reason where its row would be, rather than
        failing the whole run."""
        return None

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
    network ``net``, e.g. the VAE's decoder). ``fit`` writes ``weights.safetensors`` (those networks,
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
        return [weights_file(run_dir, "weights")]

    def _fit(self, scene, cfg, run_dir, resume, device, progress):
        from ..train import train_loop  # train imports models' building blocks, not the registry

        info, plan, emas = train_loop(cfg, lambda dev: self._plan(scene, cfg, dev), scene.cube, run_dir,
                                      device=device, resume=resume, progress=progress)
        if dist_info()[0] == 0:
            nets = {k: _sampled_module(plan, emas, k).state_dict() for k in self.sample_nets}
            save_weights({"nets": nets, "bands": int(scene.cube.shape[0]), "scene_sha256": scene.sha256,
                          "step": info["steps"]}, Path(run_dir) / f"weights{SUFFIX}")
        barrier()  # every rank then reads weights.safetensors
        self.train_info_ = info
        self._load_state(run_dir, scene)

    @staticmethod
    def _decode_latents(decode, latent: int, out_shape: tuple, n: int, random_state, device,
                        batch_size: int = 256) -> np.ndarray:
        """``decode(z)`` of ``n`` latents z ~ N(0, I) ``(m, latent)``, drawn in batches from one
        ``torch.Generator`` seeded with ``random_state`` (the same samples for a seed on any batch size);
        ``(n, *out_shape)`` float32."""
        device = resolve_device(device)
        gen = torch.Generator().manual_seed(int(random_state))
        z = torch.randn(n, latent, generator=gen)
        with torch.no_grad():
            out = [decode(z[i:i + batch_size].to(device)).float().cpu().numpy() for i in range(0, n, batch_size)]
        return np.concatenate(out) if out else np.empty((0, *out_shape), np.float32)

    def _load_state(self, run_dir: Path, scene=None):
        st = load_weights(weights_file(run_dir, "weights"))
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


# The U-Net size and the sampler of each profile, shared by the diffusion generators (HUD's; each may override).
_DIFFUSION_PROFILES = {
    "smoke": {"unet": dict(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(),
                           num_heads=1),
              "diffusion": dict(sample_steps=10)},
    # quick (docs/results.md "Why the quick profile predicts v"): on a 2-core CPU an eps-network's x0-hat at t = T drifts far
    # outside the latent; v-prediction keeps its scale, clipping x0-hat to the latent's support removes the rest,
    # and DDIM-50 with eta = 1 is smoother than eta = 0; why not DPM-Solver++: docs/running.md "Sampler parity"
    "quick": {"unet": dict(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(8,),
                           num_heads=2),
              "diffusion": dict(sample_steps=50, eta=1.0, prediction="v", clip_z0=True)},
    # a 32-px U-Net in the spirit of DDPM / improved-diffusion, ancestral sampling over all T steps as printed
    "paper": {"unet": dict(model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2,
                           attention_resolutions=(16,), dropout=0.1, num_heads=4),
              "diffusion": dict(sample_steps=1000, sampler="ddpm")},
}


class DiffusionGenerator(Generator):
    """A generator whose samples come from reverse diffusion in a latent of ``C`` channels (the ``unet`` and
    ``diffusion`` sections), then a decoder. Owns the sampler options (``sampler``, ``steps``, ``eta``,
    ``clip_z0``; the run's config where not given), the batched sampling loop (one ``torch.Generator`` seeded with
    ``random_state`` across batches) and what the record says was run.

    Subclasses set after ``fit``/``load``: ``diffusion_`` (:class:`~hudlib.diffusion.GaussianDiffusion`) and
    implement :meth:`denoiser` (the network), :meth:`latent_channels`, :meth:`z0_range` (the latent's support in
    network units, for ``clip_z0``) and :meth:`decode_latent` (latents → ``(Ŷ, X̂)``).
    """

    sections = {"unet": UNetConfig, "diffusion": DiffusionConfig}
    profiles = _DIFFUSION_PROFILES
    sampler_options = ("sampler", "steps", "eta", "clip_z0")
    tilings = ("multidiffusion", "naive")
    decode_options: tuple[str, ...] = ()  # options of decode_latent (UD/UBF: the decoding)
    ddpm_sigma = "beta"  # the ancestral sampler's variance: β_t (DDPM's Algorithm 2) or "posterior" (β̃_t)
    sample_batch = 64

    # ---------------------------------------------------------------- subclass hooks
    def denoiser(self) -> torch.nn.Module:
        raise NotImplementedError

    def latent_channels(self) -> int:
        raise NotImplementedError

    def z0_range(self) -> tuple[float, float] | None:
        raise NotImplementedError

    def decode_latent(self, z: np.ndarray, **options) -> tuple[np.ndarray, np.ndarray | None]:
        """``(Ŷ (n, bands, h, w) float32, X̂ (n, d, h, w) or None)`` from latents ``z`` ``(n, C, h, w)`` float32 in
        network units (``options``: :attr:`decode_options`)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- sampler settings
    def sampler_settings(self, **options) -> dict:
        """``{"sampler", "steps", "eta", "clip_z0"}`` that ``sample(**options)`` runs with (the run's config where an
        option is not given): DDIM's steps, or T for the ancestral sampler (which has no η)."""
        o = self.sampler_overrides(options)
        dc = self.config_.diffusion
        sampler = o.get("sampler", dc.sampler)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if sampler == "ddpm" and o.get("steps") not in (None, dc.T):
            raise ValueError(f"steps: the ancestral sampler (ddpm) always takes T = {dc.T} steps, got {o['steps']}")
        if sampler not in ETA_SAMPLERS and o.get("eta") is not None:
            raise ValueError(f"eta: only the DDIM samplers ({', '.join(ETA_SAMPLERS)}) have an eta; the {sampler} "
                             f"sampler takes none")
        steps = int(o.get("steps", dc.sample_steps)) if sampler in STEPPED_SAMPLERS else dc.T
        return {"sampler": sampler, "steps": steps, "eta": float(o.get("eta", dc.eta)) if sampler in ETA_SAMPLERS else None,
                "clip_z0": bool(o.get("clip_z0", dc.clip_z0))}

    def sampling_key(self, **options) -> str:
        """``"ddim50-eta1.0-clip"``-style tag of :meth:`sampler_settings`."""
        st = self.sampler_settings(**options)
        clip = "-clip" if st["clip_z0"] else ""
        if st["sampler"] in ("dpmpp2m", "dpmpp2m-sde"):
            return f"{st['sampler']}{st['steps']}{clip}"
        eta = st["eta"] if st["eta"] is not None else self.config_.diffusion.eta
        return f"{st['sampler']}{st['steps']}-eta{eta}{clip}"

    def model_for(self, dev, **options) -> tuple:
        """``(model, model_kwargs_for)``: the network the sampler calls (on ``dev``) and
        ``model_kwargs_for(i0, i1) -> dict``, the extra keyword arguments for samples ``i0..i1`` of a batch (none
        here; a conditioned generator passes its condition). ``options`` are the non-sampler options it accepts."""
        return self.denoiser().to(dev), lambda i0, i1: {}

    def _split_options(self, options: dict) -> tuple[dict, dict, dict]:
        """``options`` as (the sampler's, :data:`DiffusionGenerator.sampler_options`; the decoder's,
        :attr:`decode_options`; the model's: the rest a subclass accepts, e.g. a condition)."""
        o = self.sampler_overrides(options)
        base = DiffusionGenerator.sampler_options
        return ({k: v for k, v in o.items() if k in base}, {k: v for k, v in o.items() if k in self.decode_options},
                {k: v for k, v in o.items() if k not in base and k not in self.decode_options})

    def _sampler_kwargs(self, st: dict) -> dict:
        z0_range = self.z0_range() if st["clip_z0"] else None
        kw = ({"ddpm": dict(sigma=self.ddpm_sigma)}.get(st["sampler"], dict(steps=st["steps"]))
              if st["sampler"] not in ETA_SAMPLERS else dict(steps=st["steps"], eta=st["eta"]))
        return dict(sampler=st["sampler"], z0_range=z0_range, **kw)

    # ---------------------------------------------------------------- sampling
    def sample_latent(self, n: int, random_state=0, *, device="auto", progress: bool = False,
                      batch_size: int | None = None, **options) -> np.ndarray:
        """Latents ``(n, C, 32, 32)`` float32 in network units: the configured reverse process (DDIM or ancestral,
        Algorithm 2) in batches of ``batch_size`` from one generator seeded with ``random_state``."""
        sampler_opts, _, extra = self._split_options(options)
        st = self.sampler_settings(**sampler_opts)
        dev = resolve_device(device)
        net, kwargs_for = self.model_for(dev, **extra)
        gen = torch.Generator().manual_seed(int(random_state))
        size, C, bs = self.config_.train.patch_size, self.latent_channels(), int(batch_size or self.sample_batch)
        kw = self._sampler_kwargs(st)
        out = [self.diffusion_.sample(net, (min(bs, n - i), C, size, size), generator=gen, device=dev,
                                      progress=progress, model_kwargs=kwargs_for(i, min(n, i + bs)),
                                      **kw).float().cpu().numpy()
               for i in range(0, n, bs)]
        return np.concatenate(out) if out else np.empty((0, C, size, size), np.float32)

    def _sample(self, n, random_state, device, progress, **options):
        _, dec, _ = self._split_options(options)
        z = self.sample_latent(n, random_state, device=device, progress=progress,
                               **{k: v for k, v in options.items() if k not in dec})
        return self.decode_latent(z, **dec)

    # ---------------------------------------------------------------- whole scenes
    def window_kwargs_for(self, dev, height: int, width: int, **options):
        """``window_kwargs(origins) -> dict`` for :meth:`~hudlib.diffusion.GaussianDiffusion.sample_tiled` (None:
        nothing per window; a layout-conditioned generator crops its class map)."""
        return None

    def synthesize(self, height: int, width: int, random_state=0, *, stride: int | None = None,
                   tiling: str = "multidiffusion", device: str = "auto", progress: bool = False,
                   batch_size: int | None = None, **options):
        """A scene ``(Ŷ (bands, H, W), X̂ (d, H, W) or None)`` of any size at least the training window: reverse
        diffusion on the whole latent canvas, the network evaluated on overlapping windows (``stride`` ≤ the
        window, default half of it: 16 px; MultiDiffusion) whose outputs are averaged per pixel at every step, one sampler step (the run's
        own, with ``options``) on the canvas, then the generator's decoder per pixel (HUD: softmax and A, eqs. 5-6).
        ``tiling="naive"``: independent windows side by side (the control that shows seams). A canvas of exactly
        one window is ``sample(1, random_state)``, bit for bit. ``batch_size``: windows per network call (memory
        grows with it, not with the scene)."""
        size = self.check_canvas(height, width, stride, tiling)
        sampler_opts, dec, extra = self._split_options(options)
        st = self.sampler_settings(**sampler_opts)
        dev = resolve_device(device)
        net, _ = self.model_for(dev, **extra)
        gen = torch.Generator().manual_seed(int(random_state))
        z = self.diffusion_.sample_tiled(
            net, (1, self.latent_channels(), int(height), int(width)), window=size,
            stride=None if tiling == "naive" else (stride or size // 2), generator=gen, device=dev, progress=progress,
            batch_size=int(batch_size or self.sample_batch), tiling=tiling,
            window_kwargs=self.window_kwargs_for(dev, int(height), int(width), **extra), **self._sampler_kwargs(st))
        Y, X = self.decode_latent(z.float().cpu().numpy(), **dec)
        return Y[0], None if X is None else X[0]


def _mosaic(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``(rows * cols, C, s, s)`` patches, row-major, as one ``(C, rows * s, cols * s)`` image."""
    n, C, s, _ = a.shape
    return a.reshape(rows, cols, C, s, s).transpose(2, 0, 3, 1, 4).reshape(C, rows * s, cols * s)
