"""The U-Net ε_θ(Z_t, t) of the abundance diffusion module (paper III-C, eq. 14).

It maps (Z_t, t) to a tensor shaped like Z_t; hudlib.diffusion reads it as ε (the paper) or as v
(``DiffusionConfig.prediction``). The network itself does not know which.

A DDPM / improved-diffusion style U-Net written for this project: sinusoidal timestep embedding
-> MLP; residual blocks (GroupNorm, SiLU, conv, time-embedding injection, dropout); multi-head
self-attention at chosen feature-map sizes (``torch.nn.functional.scaled_dot_product_attention``);
strided-conv downsampling, nearest + conv upsampling; skip connections between the two paths;
and a GroupNorm-SiLU-conv head initialised to zero, so an untrained network predicts exactly 0.

Tensors are channel-first: ``x`` is ``(n, C, H, W)`` with C the number of endmembers d.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["timestep_embedding", "UNet", "group_count"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, as in the Transformer / DDPM.

    t: ``(n,)`` int or float tensor; returns float32 ``(n, dim)`` = [cos(t f_k), sin(t f_k)] with
    frequencies f_k = max_period^(-k / (dim // 2)), k = 0..dim//2-1 (a zero column is appended
    when ``dim`` is odd).
    """
    if not isinstance(t, torch.Tensor) or t.ndim != 1:
        raise ValueError(f"t must be a 1-D tensor of shape (n,), got "
                         f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half, 1))
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


def group_count(channels: int, num_groups: int) -> int:
    """Largest divisor of ``channels`` that is <= ``num_groups`` (the GroupNorm group count)."""
    for g in range(min(num_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


def _norm(channels: int, num_groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(group_count(channels, num_groups), channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, + time embedding, GroupNorm-SiLU-dropout-conv, + (1x1) skip.

    x: ``(n, in_ch, H, W)``, emb: ``(n, emb_dim)`` -> ``(n, out_ch, H, W)``.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, num_groups: int):
        super().__init__()
        self.in_layers = nn.Sequential(_norm(in_ch, num_groups), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_ch))
        self.out_layers = nn.Sequential(_norm(out_ch, num_groups), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb)[:, :, None, None]  # time-embedding injection
        h = self.out_layers(h)
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H*W positions with a residual connection.

    x: ``(n, C, H, W)`` -> ``(n, C, H, W)``; C must be divisible by ``num_heads``.
    """

    def __init__(self, channels: int, num_heads: int, num_groups: int):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the attention channel count {channels}")
        self.num_heads = num_heads
        self.norm = _norm(channels, num_groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # (n, heads, hw, c/heads)
        a = F.scaled_dot_product_attention(q, k, v)                # (n, heads, hw, c/heads)
        a = a.transpose(-1, -2).reshape(n, c, h, w)
        return x + self.proj_out(a)


class Downsample(nn.Module):
    """3x3 conv with stride 2: ``(n, C, H, W)`` -> ``(n, C, H/2, W/2)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then 3x3 conv: ``(n, C, H, W)`` -> ``(n, C, 2H, 2W)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class _Level(nn.Module):
    """One ResBlock optionally followed by self-attention (a unit of the down/up paths)."""

    def __init__(self, res: ResBlock, attn: AttentionBlock | None):
        super().__init__()
        self.res = res
        self.attn = attn if attn is not None else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, emb))


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class UNet(nn.Module):
    """ε-prediction U-Net: ``forward(x (n, C, H, W), t (n,)) -> ε̂ (n, C_out, H, W)``.

    Parameters
    ----------
    in_channels : C, the channels of Z (number of endmembers d; e.g. 9, 13, 16, 200).
    model_channels : base width; level i has ``model_channels * channel_mult[i]`` channels.
    out_channels : output channels (default ``in_channels``).
    channel_mult : width multipliers of the resolution levels; there are ``len(channel_mult) - 1``
        downsamplings, so H and W must be divisible by ``2 ** (len(channel_mult) - 1)``.
    num_res_blocks : residual blocks per level on the down path (``+1`` on the up path).
    attention_resolutions : feature-map sizes at which self-attention follows the residual blocks,
        counted for an ``image_size`` input (level i has size ``image_size / 2**i``). The placement
        is fixed at construction; on other input sizes the same levels keep their attention
        (their maps are then ``H / 2**i``, and attention memory/time grows with the square of the
        number of positions: build with ``image_size`` = the size you run at). The middle block
        always has attention.
    dropout : dropout probability inside residual blocks.
    num_heads : attention heads (must divide every attention channel count).
    num_groups : GroupNorm groups; each norm uses the largest divisor of its channel count <= this.
    image_size : the training input size (paper: 32x32 crops) used to place attention.

    ``self.config`` holds the constructor arguments as a JSON-able dict; ``UNet(**net.config)``
    rebuilds the same architecture. The output head is zero-initialised (ε̂ = 0 before training).
    """

    def __init__(self, in_channels: int, model_channels: int = 64, out_channels: int | None = None,
                 channel_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 2,
                 attention_resolutions: Sequence[int] = (16,), dropout: float = 0.0, num_heads: int = 4,
                 num_groups: int = 32, image_size: int = 32):
        super().__init__()
        in_channels = _positive_int(in_channels, "in_channels")
        model_channels = _positive_int(model_channels, "model_channels")
        out_channels = in_channels if out_channels is None else _positive_int(out_channels, "out_channels")
        channel_mult = tuple(channel_mult)
        if not channel_mult or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in channel_mult):
            raise ValueError(f"channel_mult must be a non-empty sequence of positive ints, got {channel_mult!r}")
        num_res_blocks = _positive_int(num_res_blocks, "num_res_blocks")
        attention_resolutions = tuple(attention_resolutions)
        if any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in attention_resolutions):
            raise ValueError(f"attention_resolutions must be positive ints, got {attention_resolutions!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        num_heads = _positive_int(num_heads, "num_heads")
        num_groups = _positive_int(num_groups, "num_groups")
        image_size = _positive_int(image_size, "image_size")
        factor = 2 ** (len(channel_mult) - 1)
        if image_size % factor:
            raise ValueError(f"image_size must be divisible by 2**(len(channel_mult)-1)={factor}, got {image_size}")

        self.config = dict(in_channels=in_channels, model_channels=model_channels, out_channels=out_channels,
                           channel_mult=list(channel_mult), num_res_blocks=num_res_blocks,
                           attention_resolutions=list(attention_resolutions), dropout=float(dropout),
                           num_heads=num_heads, num_groups=num_groups, image_size=image_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.model_channels = model_channels
        self.downsample_factor = factor

        emb_dim = 4 * model_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def attn(ch: int, size: int):
            return AttentionBlock(ch, num_heads, num_groups) if size in attention_resolutions else None

        self.input_conv = nn.Conv2d(in_channels, model_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skip_chs = [model_channels]
        ch, size = model_channels, image_size
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                out = model_channels * mult
                self.down.append(_Level(ResBlock(ch, out, emb_dim, dropout, num_groups), attn(out, size)))
                ch = out
                skip_chs.append(ch)
            if level != len(channel_mult) - 1:
                self.down.append(Downsample(ch))
                skip_chs.append(ch)
                size //= 2

        self.mid_res1 = ResBlock(ch, ch, emb_dim, dropout, num_groups)
        self.mid_attn = AttentionBlock(ch, num_heads, num_groups)
        self.mid_res2 = ResBlock(ch, ch, emb_dim, dropout, num_groups)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                out = model_channels * mult
                self.up.append(_Level(ResBlock(ch + skip_chs.pop(), out, emb_dim, dropout, num_groups),
                                      attn(out, size)))
                ch = out
                if level != 0 and i == num_res_blocks:
                    self.up.append(Upsample(ch))
                    size *= 2

        self.out = nn.Sequential(_norm(ch, num_groups), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)  # untrained net predicts exactly 0
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predict ε̂ = ε_θ(x, t).

        x: ``(n, in_channels, H, W)`` with H, W divisible by ``2 ** (len(channel_mult) - 1)``;
        t: ``(n,)`` int or float tensor of (0-indexed) timesteps, or a scalar broadcast to n.
        Returns ``(n, out_channels, H, W)``.
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (n, {self.in_channels}, H, W), got {got}")
        if x.shape[2] % self.downsample_factor or x.shape[3] % self.downsample_factor:
            raise ValueError(f"x height and width must be divisible by {self.downsample_factor}, "
                             f"got {tuple(x.shape[2:])}")
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},) matching the batch, got {tuple(t.shape)}")
        emb = self.time_embed(timestep_embedding(t.to(x.device), self.model_channels).to(x.dtype))

        h = self.input_conv(x)
        skips = [h]
        for block in self.down:
            h = block(h, emb) if isinstance(block, _Level) else block(h)
            skips.append(h)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, emb)), emb)
        for block in self.up:
            if isinstance(block, _Level):
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = block(h)
        return self.out(h)
