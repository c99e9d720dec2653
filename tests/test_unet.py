"""Tests of hudlib.unet: the ε-prediction U-Net ε_θ of eq. 14."""
import json

import pytest
import torch

from hudlib.diffusion import GaussianDiffusion, linear_beta_schedule
from hudlib.unet import AttentionBlock, UNet, group_count, timestep_embedding

SMALL = dict(model_channels=16, num_res_blocks=1, num_groups=8)


def _perturb_head(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head = net.out[-1]
        head.weight.copy_(0.05 * torch.randn(head.weight.shape, generator=g))
        head.bias.copy_(0.05 * torch.randn(head.bias.shape, generator=g))


@pytest.mark.parametrize("channels", [9, 16])
@pytest.mark.parametrize("size", [32, 64])
def test_output_shape_and_zero_init(channels, size):
    torch.manual_seed(0)
    net = UNet(channels, **SMALL)
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        y = net(x, torch.tensor([0, 999]))
    assert y.shape == x.shape
    assert torch.count_nonzero(y) == 0  # zero-initialised head: an untrained net predicts exactly 0
    _perturb_head(net)
    with torch.no_grad():
        assert net(x, torch.tensor([0, 999])).abs().sum() > 0


@pytest.mark.parametrize("channels", [13, 200])
def test_other_channel_counts_and_nonsquare(channels):
    net = UNet(channels, **SMALL, out_channels=3)
    with torch.no_grad():
        y = net(torch.randn(1, channels, 64, 32), torch.tensor([5]))
    assert y.shape == (1, 3, 64, 32)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, channels, 30, 32), torch.tensor([5]))
    with pytest.raises(ValueError, match=f"x must have shape \\(n, {channels}"):
        net(torch.randn(1, channels + 1, 32, 32), torch.tensor([5]))


def test_gradients_reach_all_parameters():
    torch.manual_seed(0)
    net = UNet(9, **SMALL, dropout=0.1)
    _perturb_head(net)
    x = torch.randn(2, 9, 32, 32)
    net(x, torch.tensor([3, 700])).pow(2).mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_timestep_embedding():
    t = torch.tensor([0, 1, 10, 999])
    e = timestep_embedding(t, 32)
    assert e.shape == (4, 32) and e.dtype == torch.float32
    assert torch.equal(e[0], torch.cat([torch.ones(16), torch.zeros(16)]))  # cos 0 = 1, sin 0 = 0
    d = torch.cdist(e, e)
    assert (d + torch.eye(4)).min() > 1e-3  # distinct t -> distinct rows
    odd = timestep_embedding(t.float() + 0.5, 33)
    assert odd.shape == (4, 33) and torch.all(odd[:, -1] == 0)
    with pytest.raises(ValueError, match="t must be a 1-D"):
        timestep_embedding(torch.zeros(2, 2), 8)


@torch.no_grad()
def test_time_input_forms_agree():
    torch.manual_seed(0)
    net = UNet(9, **SMALL)
    _perturb_head(net)
    x = torch.randn(2, 9, 16, 16)
    a = net(x, torch.tensor([7, 7]))
    torch.testing.assert_close(net(x, torch.tensor([7.0, 7.0])), a)
    torch.testing.assert_close(net(x, torch.tensor(7)), a)
    assert not torch.allclose(net(x, torch.tensor([8, 8])), a)  # the time embedding is used
    with pytest.raises(ValueError, match=r"t must have shape \(2,\)"):
        net(x, torch.tensor([1, 2, 3]))


def test_config_roundtrip():
    net = UNet(13, model_channels=32, channel_mult=(1, 2), attention_resolutions=[16, 8], num_heads=2)
    cfg = json.loads(json.dumps(net.config))
    twin = UNet(**cfg)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(twin) == count(net) > 0
    twin.load_state_dict(net.state_dict())  # strict: same architecture
    assert cfg["out_channels"] == 13 and cfg["channel_mult"] == [1, 2]


def test_attention_placement_and_groups():
    def n_attn(net):
        return sum(isinstance(m, AttentionBlock) for m in net.modules())

    # 32 px, 3 levels (32, 16, 8): level 16 gets 1 down + 2 up attention blocks, plus the middle one
    assert n_attn(UNet(9, **SMALL)) == 4
    # built for 256 px the levels are 256, 128, 64: only the middle block attends
    big = UNet(9, model_channels=8, num_res_blocks=1, num_groups=4, num_heads=2, image_size=256)
    assert n_attn(big) == 1
    with torch.no_grad():
        assert big(torch.randn(1, 9, 256, 256), torch.tensor([1])).shape == (1, 9, 256, 256)
    assert group_count(48, 32) == 24 and group_count(13, 32) == 13 and group_count(64, 32) == 32
    assert group_count(200, 32) == 25
    with pytest.raises(ValueError, match="num_heads"):
        UNet(9, model_channels=16, num_heads=3)
    with pytest.raises(ValueError, match="in_channels"):
        UNet(0)


def test_short_training_reduces_diffusion_loss():
    """Integration with eq. 15: a few Adam steps on a fixed batch lower the loss."""
    torch.manual_seed(0)
    diff = GaussianDiffusion(linear_beta_schedule(T=100))
    net = UNet(4, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(),
               num_groups=8, image_size=8)
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(8, 4, 8, 8, generator=g) * 0.5 - 5
    t = torch.randint(0, 100, (8,), generator=g)
    noise = torch.randn(8, 4, 8, 8, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        loss = diff.training_loss(net, z0, t=t, noise=noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(noise.pow(2).mean().item(), rel=1e-6)  # zero head at start
    assert losses[-1] < 0.7 * losses[0]
