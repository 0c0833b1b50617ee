"""AMP building blocks: style reward, discriminator loss terms, replay buffer, feature normaliser."""

import math

import pytest
import torch

from coohoi.agents.amp_modules import (
    DiscLossConfig,
    Discriminator,
    ReplayBuffer,
    RunningMeanStd,
    discriminator_loss,
    gaussian_kl,
    gradient_penalty,
    style_reward,
)


def test_style_reward_matches_formula_and_is_monotone():
    logits = torch.tensor([-20.0, -3.0, -1.0, 0.0, 0.5, 2.0, 5.0, 20.0])
    reward = style_reward(logits)
    for logit, r in zip(logits.tolist(), reward.tolist()):
        expected = -math.log(max(1.0 - 1.0 / (1.0 + math.exp(-logit)), 1e-4)) * 2.0
        assert r == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert reward[3].item() == pytest.approx(2.0 * math.log(2.0), rel=1e-6)
    assert torch.all(reward[1:] >= reward[:-1])
    assert torch.all(reward[1:6] > reward[:5])  # strictly increasing before the clamp
    assert reward[-1].item() == pytest.approx(-2.0 * math.log(1e-4), rel=1e-5)  # clamped: finite


def _constant_disc(size):
    disc = Discriminator(size, units=(16, 8))
    with torch.no_grad():
        for p in disc.parameters():
            p.zero_()
        disc.logit.bias.fill_(0.3)
    return disc


def test_gradient_penalty_zero_for_constant_discriminator_positive_otherwise():
    torch.manual_seed(0)
    x = torch.randn(32, 6, requires_grad=True)
    constant = _constant_disc(6)
    logits = constant(x)
    assert torch.allclose(logits, torch.full((32,), 0.3))
    assert gradient_penalty(logits, x).item() == 0.0

    disc = Discriminator(6, units=(16, 8))
    gp = gradient_penalty(disc(x), x)
    assert gp.item() > 0.0


def test_gradient_penalty_of_linear_discriminator_is_weight_norm():
    x = torch.randn(10, 3, requires_grad=True)
    w = torch.tensor([1.0, -2.0, 0.5])
    logits = x @ w
    assert gradient_penalty(logits, x).item() == pytest.approx(w.square().sum().item(), rel=1e-6)


def test_discriminator_loss_terms():
    torch.manual_seed(1)
    disc = Discriminator(5, units=(8, 4))
    demo = torch.randn(64, 5, requires_grad=True)
    policy = torch.randn(64, 5) + 2.0
    demo_logits, policy_logits = disc(demo), disc(policy)
    cfg = DiscLossConfig(grad_penalty=5.0, logit_reg=0.01, weight_decay=1e-4)
    out = discriminator_loss(demo_logits, policy_logits, demo, disc, cfg)
    bce = 0.5 * (
        torch.nn.functional.softplus(-demo_logits).mean() + torch.nn.functional.softplus(policy_logits).mean()
    )
    assert out["bce"].item() == pytest.approx(bce.item(), rel=1e-5)
    wd = sum(m.square().sum() for m in (disc.trunk[0].weight, disc.trunk[2].weight, disc.logit.weight))
    assert out["weight_decay"].item() == pytest.approx(wd.item(), rel=1e-5)
    assert out["logit_reg"].item() == pytest.approx(disc.logit.weight.square().sum().item(), rel=1e-6)
    total = out["bce"] + 5.0 * out["grad_penalty"] + 0.01 * out["logit_reg"] + 1e-4 * out["weight_decay"]
    assert out["loss"].item() == pytest.approx(total.item(), rel=1e-5)
    assert out["loss"].requires_grad
    assert 0.0 <= out["demo_accuracy"].item() <= 1.0


def test_discriminator_learns_to_separate_and_style_reward_follows():
    torch.manual_seed(2)
    disc = Discriminator(4, units=(32, 32))
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    for _ in range(150):
        demo = (torch.randn(128, 4) * 0.3 + 1.0).requires_grad_(True)
        policy = torch.randn(128, 4) * 0.3 - 1.0
        out = discriminator_loss(disc(demo), disc(policy), demo, disc)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["demo_accuracy"].item() > 0.95 and out["policy_accuracy"].item() > 0.95
    with torch.no_grad():
        r_demo = style_reward(disc(torch.randn(256, 4) * 0.3 + 1.0)).mean()
        r_policy = style_reward(disc(torch.randn(256, 4) * 0.3 - 1.0)).mean()
    assert r_demo > r_policy + 0.5


def test_replay_buffer_keeps_capacity_and_samples_only_stored_rows():
    buf = ReplayBuffer(capacity=10, feature_size=2, device="cpu", keep_prob=1.0)
    with pytest.raises(RuntimeError):
        buf.sample(1)
    buf.store(torch.arange(6, dtype=torch.float32).repeat(2, 1).T)  # rows (i, i)
    assert len(buf) == 6
    samples = buf.sample(500)
    assert set(samples[:, 0].long().tolist()) <= set(range(6))
    assert len(set(samples[:, 0].long().tolist())) == 6
    buf.store(torch.arange(6, 14, dtype=torch.float32).repeat(2, 1).T)  # wraps around
    assert len(buf) == 10 and buf.head == 4
    stored = set(buf.data[:, 0].long().tolist())
    assert stored == set(range(4, 14))  # the oldest rows were overwritten
    samples = buf.sample(1000)
    assert set(samples[:, 0].long().tolist()) == stored


def test_replay_buffer_larger_batch_than_capacity_and_keep_probability():
    gen = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(capacity=100, feature_size=1, device="cpu", keep_prob=0.1, generator=gen)
    assert buf.store(torch.arange(250, dtype=torch.float32)[:, None]) == 100  # empty buffer: fills completely
    assert len(buf) == 100 and len(set(buf.data[:, 0].tolist())) == 100
    kept = buf.store(torch.full((500, 1), -1.0))  # full: about 10% kept
    assert 25 < kept < 75
    assert (buf.data[:, 0] == -1.0).sum().item() == kept
    with pytest.raises(ValueError):
        ReplayBuffer(capacity=10, feature_size=1, device="cpu", keep_prob=0.0)


def test_running_mean_std_matches_batch_statistics():
    torch.manual_seed(3)
    data = torch.randn(1000, 3) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([2.0, -1.0, 0.0])
    rms = RunningMeanStd(3)
    for chunk in data.split(137):
        rms.update(chunk)
    assert torch.allclose(rms.mean.float(), data.mean(0), atol=1e-5)
    assert torch.allclose(rms.var.float(), data.var(0, unbiased=False), rtol=1e-4)
    assert rms.count.item() == 1000
    normed = rms.normalize(data)
    assert normed.dtype == torch.float32
    assert torch.allclose(normed.mean(0), torch.zeros(3), atol=1e-3)
    assert torch.allclose(normed.std(0), torch.ones(3), atol=1e-2)
    assert rms.normalize(torch.full((1, 3), 1e6)).max().item() == 5.0


def test_gaussian_kl_is_exact_at_the_published_small_std():
    """rl-games' policy_kl is biased below zero at std exp(-2.9); ours matches torch.distributions and is 0 for
    identical policies, which the adaptive learning-rate schedule relies on."""
    g = torch.Generator().manual_seed(0)
    mu0, mu1 = torch.randn(64, 28, generator=g), torch.randn(64, 28, generator=g)
    sigma = torch.full((64, 28), math.exp(-2.9))
    assert gaussian_kl(mu0, sigma, mu0, sigma).item() == 0.0
    p, q = torch.distributions.Normal(mu0, sigma), torch.distributions.Normal(mu0 + 1e-3 * mu1, 1.3 * sigma)
    expected = torch.distributions.kl_divergence(p, q).sum(-1).mean()
    assert gaussian_kl(mu0, sigma, mu0 + 1e-3 * mu1, 1.3 * sigma).item() == pytest.approx(expected.item(), rel=1e-5)
