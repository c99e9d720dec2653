"""Tests of hudlib.diffusion (paper III-C, eqs. 7-15, Algorithms 1-2), diffusers scheduler-test style.

The analytic stand-in: if Z_0 ~ N(μ, s² I) then Z_t ~ N(sqrt(ᾱ_t) μ, (ᾱ_t s² + 1 - ᾱ_t) I) and the
optimal ε predictor is E[ε | Z_t] = sqrt(1 - ᾱ_t) (Z_t - sqrt(ᾱ_t) μ) / (ᾱ_t s² + 1 - ᾱ_t).
μ = -10 lies far outside [-1, 1]: any clamping of Ẑ_0 would be caught.
"""
import math

import numpy as np
import pytest
import torch

from hudlib.diffusion import GaussianDiffusion, linear_beta_schedule

MU, S = -10.0, 0.5
SHAPE = (8, 4, 16, 16)  # 8192 independent scalars (the stand-in acts elementwise)
N = math.prod(SHAPE)


@pytest.fixture(scope="module")
def diff():
    return GaussianDiffusion(linear_beta_schedule())


def gaussian_eps_model(diffusion, mu=MU, s=S):
    """Optimal ε predictor for Z_0 ~ N(mu, s² I)."""
    abar = torch.from_numpy(diffusion.alphas_cumprod)

    def model(z, t):
        ab = abar.to(z)[t].view(-1, *([1] * (z.ndim - 1)))
        return torch.sqrt(1 - ab) * (z - torch.sqrt(ab) * mu) / (ab * s * s + 1 - ab)

    return model


def sample(diff, seed, dtype=torch.float64, **kw):
    return diff.sample(gaussian_eps_model(diff), SHAPE, generator=torch.Generator().manual_seed(seed),
                       dtype=dtype, **kw)


# ----------------------------------------------------------------------------- schedule

def test_linear_schedule_float64_endpoints():
    betas = linear_beta_schedule()
    assert betas.dtype == np.float64 and betas.shape == (1000,)
    assert betas[0] == 1e-4 and betas[-1] == 0.02
    assert np.all(np.diff(betas) > 0)
    with pytest.raises(ValueError, match="T"):
        linear_beta_schedule(0)
    with pytest.raises(ValueError, match="betas"):
        GaussianDiffusion(np.array([0.1, 1.5]))


def test_alphas_cumprod_is_product(diff):
    assert diff.T == 1000 and diff.alphas_cumprod.dtype == np.float64
    for t in (0, 1, 17, 500, 999):  # 0-indexed: alphas_cumprod[t] = Π_{s<=t} (1 - β_s)
        assert diff.alphas_cumprod[t] == pytest.approx(math.prod(1 - diff.betas[: t + 1]), rel=1e-12)
    assert diff.alphas_cumprod_prev[0] == 1.0
    np.testing.assert_array_equal(diff.alphas_cumprod_prev[1:], diff.alphas_cumprod[:-1])
    np.testing.assert_allclose(diff.sqrt_alphas_cumprod ** 2 + diff.sqrt_one_minus_alphas_cumprod ** 2, 1.0,
                               rtol=1e-14)


def _bayes_posterior(diff, t):
    """q(Z_{t-1} | Z_t, Z_0) by Gaussian conditioning of q(Z_{t-1}|Z_0) and q(Z_t|Z_{t-1}) (eq. 8).

    Returns (coefficient of Z_0, coefficient of Z_t, variance)."""
    abar_prev, alpha, beta = diff.alphas_cumprod[t - 1], diff.alphas[t], diff.betas[t]
    var = 1.0 / (1.0 / (1 - abar_prev) + alpha / beta)
    return var * math.sqrt(abar_prev) / (1 - abar_prev), var * math.sqrt(alpha) / beta, var


@pytest.mark.parametrize("t", [1, 2, 100, 999])
def test_posterior_variance_and_mean(diff, t):
    c0, ct, var = _bayes_posterior(diff, t)
    # β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t (eq. 12) equals the direct conditioning variance
    assert diff.posterior_variance[t] == pytest.approx(var, rel=1e-10)
    assert diff.posterior_log_variance_clipped[t] == pytest.approx(math.log(var), rel=1e-10)

    g = torch.Generator().manual_seed(t)
    z0 = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64) - 5
    zt = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    tt = torch.full((3,), t, dtype=torch.long)
    mean, v, logv = diff.q_posterior_mean_variance(z0, zt, tt)
    assert v.shape == (3, 1, 1, 1) and torch.all(v == diff.posterior_variance[t])
    # μ̃_t of eq. 12 by hand (with sqrt(α_t) on Z_t as in DDPM eq. 7)
    ab, ab_prev, a, b = (diff.alphas_cumprod[t], diff.alphas_cumprod[t - 1], diff.alphas[t], diff.betas[t])
    by_hand = math.sqrt(ab_prev) * b / (1 - ab) * z0 + math.sqrt(a) * (1 - ab_prev) / (1 - ab) * zt
    torch.testing.assert_close(mean, by_hand, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mean, c0 * z0 + ct * zt, rtol=1e-9, atol=1e-9)
    # The paper prints sqrt(ᾱ_t) on Z_t: that is a typo, it disagrees with the conditioning.
    printed = math.sqrt(ab_prev) * b / (1 - ab) * z0 + math.sqrt(ab) * (1 - ab_prev) / (1 - ab) * zt
    assert not torch.allclose(mean, printed, rtol=1e-6, atol=1e-6)


def test_first_step_posterior_variance_is_zero_and_log_clipped(diff):
    assert diff.posterior_variance[0] == 0.0
    assert diff.posterior_log_variance_clipped[0] == math.log(diff.posterior_variance[1])
    assert np.all(np.isfinite(diff.posterior_log_variance_clipped))


# ----------------------------------------------------------------------------- forward process

def test_q_sample_and_inverse(diff):
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64) * 2 - 8
    noise = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 999])
    zt = diff.q_sample(z0, t, noise)
    for i, ti in enumerate(t.tolist()):  # eq. 12 reparameterisation
        ab = diff.alphas_cumprod[ti]
        torch.testing.assert_close(zt[i], math.sqrt(ab) * z0[i] + math.sqrt(1 - ab) * noise[i])
    torch.testing.assert_close(diff.predict_z0_from_eps(zt, t, noise), z0, rtol=1e-9, atol=1e-9)
    # eq. 14 mean equals μ̃_t(Z_t, Ẑ_0(ε)) for t >= 1
    mu_theta = diff.predict_mean_from_eps(zt, t, noise)
    mu_tilde, _, _ = diff.q_posterior_mean_variance(z0, zt, t)
    torch.testing.assert_close(mu_theta[1:], mu_tilde[1:], rtol=1e-9, atol=1e-9)


def test_q_sample_statistics(diff):
    z0 = torch.full((4000, 1, 1, 1), -7.0, dtype=torch.float64)
    t = torch.full((4000,), 300, dtype=torch.long)
    torch.manual_seed(0)
    zt = diff.q_sample(z0, t)
    ab = diff.alphas_cumprod[300]
    # SE(mean) = sqrt(1 - ᾱ)/sqrt(4000) ≈ 0.014; SE(var)/var ≈ sqrt(2/4000) ≈ 2.2%
    assert zt.mean().item() == pytest.approx(-7.0 * math.sqrt(ab), abs=0.07)
    assert zt.var().item() == pytest.approx(1 - ab, rel=0.1)


def test_bad_timesteps_raise(diff):
    z = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="t must lie"):
        diff.q_sample(z, torch.tensor([0, 1000]))
    with pytest.raises(TypeError, match="integer"):
        diff.q_sample(z, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        diff.q_sample(z, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="noise"):
        diff.q_sample(z, torch.tensor([0, 1]), noise=torch.zeros(2, 3, 4, 5))


# ----------------------------------------------------------------------------- training loss

def test_training_loss_zero_for_perfect_predictor(diff):
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(6, 4, 8, 8, generator=g) - 6
    noise = torch.randn(6, 4, 8, 8, generator=g)
    t = torch.randint(0, diff.T, (6,), generator=g)
    assert diff.training_loss(lambda x, tt: noise, z0, t=t, noise=noise).item() == 0.0
    loss0 = diff.training_loss(lambda x, tt: torch.zeros_like(x), z0, t=t, noise=noise)
    assert loss0.ndim == 0 and loss0.item() > 0
    assert loss0.item() == pytest.approx(noise.pow(2).mean().item(), rel=1e-6)  # eq. 15
    wrong = diff.training_loss(lambda x, tt: noise + 0.1, z0, t=t, noise=noise)
    assert wrong.item() == pytest.approx(0.01, rel=1e-4)


def test_training_loss_random_draws(diff):
    z0 = torch.randn(4096, 1, 1, 1)
    seen = []

    def model(x, t):
        seen.append(t.clone())
        return torch.zeros_like(x)

    small = GaussianDiffusion(linear_beta_schedule(T=10))
    l1 = small.training_loss(model, z0, generator=torch.Generator().manual_seed(3))
    l2 = small.training_loss(model, z0, generator=torch.Generator().manual_seed(3))
    l3 = small.training_loss(model, z0, generator=torch.Generator().manual_seed(4))
    assert l1.item() == l2.item() != l3.item()
    torch.testing.assert_close(seen[0], seen[1])
    t = seen[0]
    assert t.dtype == torch.long and int(t.min()) == 0 and int(t.max()) == 9  # uniform over {0..T-1}
    counts = torch.bincount(t, minlength=10).double()
    assert counts.min() > 300 and counts.max() < 520  # expected 409.6 each, SE ≈ 19


def test_training_loss_backpropagates(diff):
    w = torch.zeros(1, requires_grad=True)
    loss = diff.training_loss(lambda x, t: w * x, torch.randn(2, 3, 4, 4),
                              generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert w.grad is not None and w.grad.abs().item() > 0
    with pytest.raises(ValueError, match="model output"):
        diff.training_loss(lambda x, t: x[:, :1], torch.randn(2, 3, 4, 4))


# ----------------------------------------------------------------------------- samplers
# Tolerances: 8192 independent scalars with s = 0.5 give SE(mean) = s/sqrt(N) ≈ 0.0055 and
# SE(std)/s = 1/sqrt(2N) ≈ 0.8 %. The sampler's prior N(0, I) differs from the true Z_T
# marginal mean sqrt(ᾱ_T) μ ≈ -0.064, which leaves a bias of at most ≈ 0.064 s ≈ 0.032 on the mean.

@pytest.mark.parametrize("sigma", ["beta", "posterior"])
def test_ddpm_recovers_gaussian_without_clamping(diff, sigma):
    z = sample(diff, 0, sampler="ddpm", sigma=sigma)
    assert z.shape == SHAPE and z.dtype == torch.float64
    assert z.mean().item() == pytest.approx(MU, abs=0.05)  # 0.032 bias + ~3 SE
    assert z.std().item() == pytest.approx(S, rel=0.04)    # ~3 SE + O(1/T) discretisation


def test_ddim_recovers_gaussian_and_converges_with_steps(diff):
    z50 = sample(diff, 0, sampler="ddim", steps=50)
    assert z50.mean().item() == pytest.approx(MU, abs=0.05)
    # DDIM is a first-order ODE solver: at 50 steps the spread shrinks by ~6 % (measured), the error
    # falling as steps grow (same Z_T for the same seed, η = 0).
    assert z50.std().item() == pytest.approx(S, rel=0.09)
    errs = [abs(sample(diff, 0, sampler="ddim", steps=k).std().item() - S) for k in (10, 50, 1000)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.02 * S


def test_ddim_pinned_values(diff):
    z = diff.ddim_sample(gaussian_eps_model(diff), (2, 4, 16, 16), steps=50,
                         generator=torch.Generator().manual_seed(0))
    assert z.dtype == torch.float32
    expected = torch.tensor([-10.501325, -10.513837, -10.088272, -10.174774, -9.569500, -9.643451])
    torch.testing.assert_close(z.flatten()[:6], expected, atol=1e-4, rtol=0)


def test_ddim_eta0_deterministic_and_uses_only_initial_noise(diff):
    model = gaussian_eps_model(diff)
    g = torch.Generator().manual_seed(5)
    a = diff.ddim_sample(model, (2, 3, 8, 8), steps=20, generator=g)
    after = torch.randn(4, generator=g)
    b = diff.ddim_sample(model, (2, 3, 8, 8), steps=20, generator=torch.Generator().manual_seed(5))
    c = diff.ddim_sample(model, (2, 3, 8, 8), steps=20, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    # η = 0 consumes exactly one draw (Z_T) from the generator
    g2 = torch.Generator().manual_seed(5)
    torch.randn((2, 3, 8, 8), generator=g2)
    assert torch.equal(after, torch.randn(4, generator=g2))


def test_ddim_full_eta1_equals_ddpm_posterior(diff):
    a = sample(diff, 1, sampler="ddpm", sigma="posterior")
    b = sample(diff, 1, sampler="ddim", steps=diff.T, eta=1.0)
    # identical noise draws, algebraically identical updates: equal up to float64 rounding
    torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    assert a.mean().item() == pytest.approx(b.mean().item(), abs=1e-9)
    assert a.std().item() == pytest.approx(b.std().item(), abs=1e-9)
    assert b.std().item() == pytest.approx(S, rel=0.04)
    beta = sample(diff, 1, sampler="ddpm", sigma="beta")
    assert not torch.allclose(a, beta)  # the two σ choices really differ


def test_timesteps_and_network_evals():
    diff = GaussianDiffusion(linear_beta_schedule(T=100))
    ts = diff.ddim_timesteps(7)
    assert ts[0] == 99 and ts[-1] == 0 and len(ts) == 7 and np.all(np.diff(ts) < 0)
    np.testing.assert_array_equal(diff.ddim_timesteps(100), np.arange(99, -1, -1))
    assert diff.ddim_timesteps(1).tolist() == [99]
    assert diff.network_evals("ddpm") == 100 and diff.network_evals("ddim", 50) == 50
    with pytest.raises(ValueError, match="steps: the ddim sampler needs its number of steps"):
        diff.network_evals("ddim")
    calls = []

    def model(x, t, scale=1.0):
        calls.append(int(t[0]))
        assert scale == 2.0  # model_kwargs are passed through
        return torch.zeros_like(x)

    for sampler, steps in (("ddpm", None), ("ddim", 13), ("ddim", 50), ("ddim-lambda", 13), ("dpmpp2m", 13),
                           ("dpmpp2m-sde", 13)):
        calls.clear()
        diff.sample(model, (1, 2, 4, 4), sampler=sampler, steps=steps, model_kwargs={"scale": 2.0})
        assert len(calls) == diff.network_evals(sampler, steps)
        assert calls[0] == 99 and calls[-1] == 0
    with pytest.raises(ValueError, match="steps"):
        diff.sample(model, (1, 2, 4, 4), sampler="ddpm", steps=10)
    with pytest.raises(ValueError, match="sampler"):
        diff.network_evals("euler")
    with pytest.raises(ValueError, match="steps"):
        diff.ddim_timesteps(101)
    with pytest.raises(ValueError, match="eta"):
        diff.ddim_sample(model, (1, 2, 4, 4), steps=2, eta=-0.5)
    with pytest.raises(ValueError, match="sigma"):
        diff.ddpm_sample(model, (1, 2, 4, 4), sigma="learned")
    with pytest.raises(ValueError, match="model must return"):
        diff.ddim_sample(lambda x, t: x[:, :1], (1, 2, 4, 4), steps=2)


def test_dpmpp2m_is_second_order_on_the_planted_gaussian(diff):
    """Both samplers solve the same probability-flow ODE from the same Z_T; its endpoint (1000 steps) maps N(0, I)
    onto N(μ, s²). DPM-Solver++(2M)'s pathwise error falls ~4x per doubling of the steps (second order), DDIM's
    2x (first order), and 10 DPM-Solver++ steps land closer to the endpoint than 40 DDIM steps."""
    end = sample(diff, 0, sampler="dpmpp2m", steps=1000)
    assert end.mean().item() == pytest.approx(MU, abs=0.05) and end.std().item() == pytest.approx(S, rel=0.04)

    def err(sampler, k):
        return (sample(diff, 0, sampler=sampler, steps=k) - end).abs().max().item()
    dpm = {k: err("dpmpp2m", k) for k in (10, 20, 40, 80)}
    ddim = {k: err("ddim", k) for k in (20, 40, 80)}
    assert dpm[20] / dpm[40] > 3 and dpm[40] / dpm[80] > 3          # measured 4.0, 4.6
    assert 1.6 < ddim[20] / ddim[40] < 2.5 and 1.6 < ddim[40] / ddim[80] < 2.5  # measured 2.0, 2.0
    assert dpm[10] < 0.5 * ddim[40]                                  # measured 0.061 vs 0.134
    assert (sample(diff, 0, sampler="ddim", steps=1000) - end).abs().max().item() < 0.02  # one ODE


def test_dpmpp2m_deterministic_first_step_is_ddim(diff):
    """Z_T is the only draw; with 2 steps the solver is DDIM η = 0 (first step first order, last step Ẑ_0)."""
    model = gaussian_eps_model(diff)
    a = diff.dpmpp2m_sample(model, (2, 3, 8, 8), steps=2, generator=torch.Generator().manual_seed(5),
                            dtype=torch.float64)
    b = diff.ddim_sample(model, (2, 3, 8, 8), steps=2, generator=torch.Generator().manual_seed(5),
                         dtype=torch.float64)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    c = diff.dpmpp2m_sample(model, (2, 3, 8, 8), steps=8, generator=torch.Generator().manual_seed(5))
    d = diff.dpmpp2m_sample(model, (2, 3, 8, 8), steps=8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(c, d)


def diffusers_scheduler(diff, steps: int, algorithm: str):
    """diffusers' DPMSolverMultistepScheduler as the reference for :meth:`GaussianDiffusion.dpmpp2m_sample`: order 2,
    midpoint, final σ = 0, on our betas, prediction and λ-uniform timesteps."""
    import diffusers  # a dev dependency: the reference implementation

    sched = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=diff.T, trained_betas=diff.betas.tolist(), solver_order=2, algorithm_type=algorithm,
        solver_type="midpoint", final_sigmas_type="zero", lower_order_final=True,
        prediction_type="epsilon" if diff.prediction == "eps" else "v_prediction")
    ts = diff.logsnr_timesteps(steps)
    sched.set_timesteps(timesteps=ts.tolist())
    # diffusers keeps its σ's in float32; give it ours in float64 so the comparison is of the update rule only
    abar = diff.alphas_cumprod[ts]
    sched.sigmas = torch.from_numpy(np.append(np.sqrt((1 - abar) / abar), 0.0))
    return sched


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("steps", [4, 10, 20])
def test_dpmpp2m_matches_diffusers(prediction, steps):
    """Step for step equal to diffusers' DPMSolverMultistepScheduler (dpmsolver++, order 2, midpoint, final σ = 0)
    on the same timesteps, with a network that is not the optimal one (so every correction term matters)."""
    diff = GaussianDiffusion(linear_beta_schedule(), prediction=prediction)
    weight = torch.linspace(-0.7, 0.9, 3, dtype=torch.float64).view(1, 3, 1, 1)

    def model(x, t):  # an arbitrary smooth, t-dependent "network"
        return weight * torch.tanh(x) + (t.to(x.dtype) / 1000.0).view(-1, 1, 1, 1) * x.roll(1, dims=-1)

    ours = diff.dpmpp2m_sample(model, (2, 3, 5, 5), steps=steps, generator=torch.Generator().manual_seed(3),
                               dtype=torch.float64)
    sched = diffusers_scheduler(diff, steps, "dpmsolver++")
    x = torch.randn((2, 3, 5, 5), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for t in sched.timesteps:
        x = sched.step(model(x, torch.full((2,), int(t))), t, x).prev_sample
    # diffusers' step computes in float32 (measured gap ~1e-6 relative); a wrong term would be O(1e-1)
    torch.testing.assert_close(ours, x.to(torch.float64), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("steps", [4, 12])
def test_dpmpp2m_sde_matches_diffusers(prediction, steps):
    """The SDE form equals diffusers' sde-dpmsolver++ (order 2, midpoint, final σ = 0) given the same noise draws:
    Z_T, then one draw per step but the last, in that order from the generator."""
    diff = GaussianDiffusion(linear_beta_schedule(), prediction=prediction)
    model = lambda x, t: torch.tanh(x) * 0.8 + (t.to(x.dtype) / 1000.0).view(-1, 1, 1, 1) * x.roll(1, -2)  # noqa: E731
    shape = (2, 3, 5, 5)
    ours = diff.dpmpp2m_sample(model, shape, steps=steps, generator=torch.Generator().manual_seed(4),
                               dtype=torch.float64, sde=True)
    sched = diffusers_scheduler(diff, steps, "sde-dpmsolver++")
    g = torch.Generator().manual_seed(4)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    for i, t in enumerate(sched.timesteps):
        noise = torch.randn(shape, generator=g, dtype=torch.float64) if i < steps - 1 else torch.zeros(shape)
        x = sched.step(model(x, torch.full((2,), int(t))), t, x, variance_noise=noise).prev_sample
    # diffusers computes in float32 (noise included): measured gap up to 4e-5; a wrong term would be O(1e-1)
    torch.testing.assert_close(ours, x.to(torch.float64), rtol=1e-4, atol=1e-4)
    ode = diff.dpmpp2m_sample(model, shape, steps=steps, generator=torch.Generator().manual_seed(4),
                              dtype=torch.float64)
    assert not torch.allclose(ours, ode)  # the noise really enters


def test_dpmpp2m_sde_recovers_the_planted_gaussian(diff):
    """A stochastic solver keeps no pathwise link to the ODE; its samples' spread converges to s as steps grow."""
    errs = {k: abs(sample(diff, 0, sampler="dpmpp2m-sde", steps=k).std().item() - S) for k in (10, 25, 100)}
    z = sample(diff, 0, sampler="dpmpp2m-sde", steps=25)
    assert z.mean().item() == pytest.approx(MU, abs=0.05)
    assert errs[25] < 0.04 * S and errs[100] < 0.04 * S   # ~3 SE of the std of 8192 scalars
    assert errs[10] < 0.12 * S


def test_ddim_lambda_is_ddim_on_the_logsnr_grid(diff):
    """"ddim-lambda" is DDIM's update on logsnr_timesteps: each network call sees the λ grid's timestep, the
    result is the DDIM loop on that grid bit for bit, and it differs from the time grid's; with every timestep
    (steps = T) the two grids coincide."""
    small = GaussianDiffusion(linear_beta_schedule(T=100))
    seen = []

    def model(z, t):
        seen.append(int(t[0]))
        return 0.1 * z

    def run(**kw):
        return small.sample(model, (2, 3, 4, 4), generator=torch.Generator().manual_seed(2), eta=1.0, **kw)

    lam = run(sampler="ddim-lambda", steps=9)
    assert seen == small.logsnr_timesteps(9).tolist()
    assert seen != small.ddim_timesteps(9).tolist()
    assert torch.equal(lam, small.ddim_sample(model, (2, 3, 4, 4), steps=9, eta=1.0, grid="lambda",
                                              generator=torch.Generator().manual_seed(2)))
    assert not torch.equal(lam, run(sampler="ddim", steps=9))
    assert torch.equal(run(sampler="ddim-lambda", steps=100), run(sampler="ddim", steps=100))
    # on the planted Gaussian both grids keep the mean; with η = 1 few steps shrink the spread (time grid at 20
    # steps: 0.39 for s = 0.5, measured), the λ grid no more than the time grid, and less as the steps grow
    err = {}
    for sampler in ("ddim", "ddim-lambda"):
        for k in (20, 100):
            z = sample(diff, 0, sampler=sampler, steps=k, eta=1.0)
            assert z.mean().item() == pytest.approx(MU, abs=0.05)
            err[sampler, k] = abs(z.std().item() - S)
    assert err["ddim-lambda", 20] <= err["ddim", 20] and err["ddim-lambda", 100] < 0.5 * err["ddim-lambda", 20]
    with pytest.raises(ValueError, match="grid: expected one of"):
        small.ddim_sample(model, (1, 3, 4, 4), steps=3, grid="cosine")


def test_logsnr_timesteps():
    diff = GaussianDiffusion(linear_beta_schedule())
    lam = 0.5 * np.log(diff.alphas_cumprod / (1 - diff.alphas_cumprod))
    for k in (1, 2, 3, 10, 20, 100, 999, 1000):
        ts = diff.logsnr_timesteps(k)
        assert len(ts) == k and ts[0] == 999 and np.all(np.diff(ts) < 0) and (k == 1 or ts[-1] == 0)
    np.testing.assert_array_equal(diff.logsnr_timesteps(1000), np.arange(999, -1, -1))
    ts = diff.logsnr_timesteps(10)  # brute force: the nearest timestep to each of 10 evenly spaced λ's
    want = [int(np.argmin(np.abs(lam - v))) for v in np.linspace(lam[-1], lam[0], 10)]
    assert ts.tolist() == want
    with pytest.raises(ValueError, match="steps"):
        diff.logsnr_timesteps(0)


def test_ddpm_zero_model_is_not_clamped(diff):
    """With ε_θ ≡ 0 the eq. 14 chain is Z_{t-1} = Z_t / sqrt(α_t) + σ_t ε, which grows far past |Z| = 1."""
    z = diff.ddpm_sample(lambda x, t: torch.zeros_like(x), (2, 3, 8, 8),
                          generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.isfinite(z).all() and z.std().item() > 10.0  # ~1/sqrt(ᾱ_T) ≈ 157 growth


# ----------------------------------------------------------------------------- min-SNR weighting, Ẑ_0 clipping

def test_min_snr_weights_against_brute_force(diff):
    snr = diff.alphas_cumprod / (1 - diff.alphas_cumprod)
    np.testing.assert_array_equal(diff.loss_weights("uniform"), np.ones(diff.T))
    w = diff.loss_weights("min_snr", 5.0)
    for t in (0, 10, 50, 200, 999):
        assert w[t] == pytest.approx(min(snr[t], 5.0) / snr[t], rel=1e-12)
    assert np.all(w[snr <= 5.0] == 1.0) and np.all(w[snr > 5.0] < 1.0)
    assert w[0] < 1e-3  # SNR_1 ≈ 1e4: the smallest-noise step barely counts
    with pytest.raises(ValueError, match="weighting"):
        diff.loss_weights("snr")
    with pytest.raises(ValueError, match="min_snr_gamma"):
        diff.loss_weights("min_snr", 0.0)


def test_min_snr_loss_is_weighted_mean(diff):
    g = torch.Generator().manual_seed(2)
    z0 = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64) - 7
    noise = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 3, 40, 300, 999])

    def model(x, tt):
        return 0.3 * x

    zt = diff.q_sample(z0, t, noise)
    w = diff.loss_weights("min_snr", 5.0)[t.numpy()]
    per_sample = ((noise - 0.3 * zt) ** 2).mean(dim=(1, 2, 3)).numpy()
    expect = float((w * per_sample).mean())
    got = diff.training_loss(model, z0, t=t, noise=noise, weighting="min_snr", min_snr_gamma=5.0).item()
    assert got == pytest.approx(expect, rel=1e-12)
    assert diff.training_loss(lambda x, tt: noise, z0, t=t, noise=noise, weighting="min_snr").item() == 0.0


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "ddim-lambda", "dpmpp2m", "dpmpp2m-sde"])
def test_z0_range_clips_and_is_exact_when_not_binding(diff, sampler):
    kw = {"ddim": dict(steps=20, eta=1.0), "ddim-lambda": dict(steps=20, eta=1.0), "ddpm": {}}.get(sampler,
                                                                                                dict(steps=20))
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731  Ẑ_0 = Z_t / sqrt(ᾱ_t): far outside any range
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    z = diff.sample(zero, (2, 3, 8, 8), sampler=sampler, generator=g(), z0_range=(-10.5, 0.0), **kw)
    assert float(z.min()) >= -10.5 and float(z.max()) <= 0.0  # the last step returns the clipped Ẑ_0
    assert float(z.std()) > 1.0  # still a sample, not a constant
    # A range the Gaussian stand-in (μ = -10, s = 0.5) never reaches gives the unclipped sampler's result.
    a = sample(diff, 3, sampler=sampler, **kw)
    b = sample(diff, 3, sampler=sampler, z0_range=(-1e6, 1e6), **kw)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="z0_range"):
        diff.sample(zero, (1, 2, 4, 4), sampler=sampler, z0_range=(0.0, -1.0), **kw)


# ----------------------------------------------------------------------------- v-prediction

def gaussian_v_model(diffusion, mu=MU, s=S):
    """The same optimal predictor as :func:`gaussian_eps_model`, written as v = (ε - sqrt(1-ᾱ_t) Z_t)/sqrt(ᾱ_t)."""
    eps_model = gaussian_eps_model(diffusion, mu, s)
    abar = torch.from_numpy(diffusion.alphas_cumprod)

    def model(z, t):
        ab = abar.to(z)[t].view(-1, *([1] * (z.ndim - 1)))
        return (eps_model(z, t) - torch.sqrt(1 - ab) * z) / torch.sqrt(ab)

    return model


@pytest.mark.parametrize("sampler,kw", [("ddpm", {}), ("ddim", dict(steps=25, eta=0.0)),
                                        ("ddim", dict(steps=25, eta=1.0)), ("dpmpp2m", dict(steps=15)),
                                        ("ddim-lambda", dict(steps=25, eta=1.0)),
                                        ("dpmpp2m-sde", dict(steps=15))])
def test_v_prediction_samples_equal_eps_prediction(diff, sampler, kw):
    vdiff = GaussianDiffusion(linear_beta_schedule(), prediction="v")
    a = sample(diff, 7, sampler=sampler, **kw)
    b = vdiff.sample(gaussian_v_model(vdiff), SHAPE, sampler=sampler, generator=torch.Generator().manual_seed(7),
                     dtype=torch.float64, **kw)
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)


def test_v_prediction_loss(diff):
    vdiff = GaussianDiffusion(linear_beta_schedule(), prediction="v")
    g = torch.Generator().manual_seed(4)
    z0 = torch.randn(6, 2, 4, 4, generator=g, dtype=torch.float64) - 7
    noise = torch.randn(6, 2, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 5, 100, 400, 800, 999])
    ab = torch.from_numpy(vdiff.alphas_cumprod)[t].view(-1, 1, 1, 1)
    v = ab.sqrt() * noise - (1 - ab).sqrt() * z0
    assert vdiff.training_loss(lambda x, tt: v, z0, t=t, noise=noise).item() == pytest.approx(0.0, abs=1e-24)
    assert vdiff.training_loss(lambda x, tt: torch.zeros_like(x), z0, t=t, noise=noise).item() == \
        pytest.approx(float((v ** 2).mean()), rel=1e-12)
    snr = vdiff.snr()
    np.testing.assert_allclose(vdiff.loss_weights("min_snr", 5.0), np.minimum(snr, 5.0) / (snr + 1), rtol=1e-12)
    with pytest.raises(ValueError, match="prediction"):
        GaussianDiffusion(linear_beta_schedule(), prediction="x0")
