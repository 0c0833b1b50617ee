"""The pieces of Adversarial Motion Priors (AMP), usable without rl-games.

- `Discriminator`: MLP over AMP feature histories, one logit out (demo = 1, policy = 0).
- `discriminator_loss`: binary cross-entropy, gradient penalty on demo samples, logit-weight regularisation and
  weight decay, with the coefficients of the Isaac Gym AMP implementations (reference §5).
- `style_reward`: -log(max(1 - sigmoid(logit), 1e-4)) * 2 (reference §5).
- `ReplayBuffer`: ring buffer of AMP samples on the engine's device (policy replay and demo buffers).
- `RunningMeanStd`: running feature normaliser on device.

Everything is batched torch on whatever device the inputs live on; nothing goes through numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

# Style reward (reference §5): the clamp keeps the reward finite where the discriminator is certain it sees policy.
STYLE_REWARD_MIN_PROB = 1e-4
STYLE_REWARD_SCALE = 2.0
# The logit head starts small and uniform, so early style rewards are near -log(0.5) * 2 for every sample.
DISC_LOGIT_INIT_RANGE = 1.0
# Normalised features are clipped to this many standard deviations (keeps rare outliers from dominating).
NORMALISER_CLIP = 5.0
NORMALISER_EPS = 1e-5


@dataclass
class DiscLossConfig:
    """Coefficients of the discriminator loss (reference §5, Isaac Gym AMP implementations)."""

    grad_penalty: float = 5.0  # on demo samples
    logit_reg: float = 0.01  # squared weights of the logit layer
    weight_decay: float = 1e-4  # squared weights of all layers (a loss term, so the actor's Adam is unaffected)


ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class Discriminator(nn.Module):
    """MLP [input -> units... -> 1]; returns one logit per sample, shape [B]."""

    def __init__(self, input_size: int, units=(1024, 512), activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"discriminator activation {activation!r} unknown; choose one of {sorted(ACTIVATIONS)}")
        if input_size < 1 or not units:
            raise ValueError(f"discriminator needs input_size >= 1 and hidden units, got {input_size}, {units}")
        layers: list[nn.Module] = []
        size = input_size
        for width in units:
            linear = nn.Linear(size, int(width))
            nn.init.zeros_(linear.bias)
            layers += [linear, ACTIVATIONS[activation]()]
            size = int(width)
        self.trunk = nn.Sequential(*layers)
        self.logit = nn.Linear(size, 1)
        nn.init.uniform_(self.logit.weight, -DISC_LOGIT_INIT_RANGE, DISC_LOGIT_INIT_RANGE)
        nn.init.zeros_(self.logit.bias)
        self.input_size = input_size

    def forward(self, amp_obs: torch.Tensor) -> torch.Tensor:
        return self.logit(self.trunk(amp_obs)).squeeze(-1)

    def weights(self) -> list[torch.Tensor]:
        """Weight matrices of every layer (biases excluded), for weight decay."""
        return [m.weight for m in self.modules() if isinstance(m, nn.Linear)]


def gaussian_kl(mu0: torch.Tensor, sigma0: torch.Tensor, mu1: torch.Tensor, sigma1: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over samples (weighted by weights [B] of mean 1, if given) of KL(N(mu0, sigma0) || N(mu1, sigma1)),
    summed over action dimensions. rl-games' policy_kl adds 1e-5 to sigma^2, which at the published std exp(-2.9)
    biases it by -0.046 for 28 actions."""
    var0, var1 = sigma0.square(), sigma1.square()
    kl = (torch.log(sigma1 / sigma0) + (var0 + (mu0 - mu1).square()) / (2.0 * var1) - 0.5).sum(dim=-1)
    return kl.mean() if weights is None else (kl * weights).mean()


def gradient_penalty(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Mean over samples of |d logit / d input|^2; inputs must require grad and have produced logits."""
    (grad,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True, retain_graph=True)
    return grad.square().sum(dim=-1).mean()


def discriminator_loss(
    demo_logits: torch.Tensor,
    policy_logits: torch.Tensor,
    demo_inputs: torch.Tensor,
    disc: Discriminator,
    cfg: DiscLossConfig = DiscLossConfig(),
    policy_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Loss terms of the discriminator. demo_logits must come from demo_inputs (requires_grad) through disc.
    policy_mask [B] (bool): the policy samples that count (inactive team slots do not); None: all.

    Returns a dict with "loss" (total, to be scaled by the disc loss coefficient) and every term and diagnostic
    (detached): bce, grad_penalty, logit_reg, weight_decay, demo_accuracy, policy_accuracy, demo_logit,
    policy_logit.
    """
    bce_demo = F.binary_cross_entropy_with_logits(demo_logits, torch.ones_like(demo_logits))
    if policy_mask is None:
        policy_mask = torch.ones_like(policy_logits, dtype=torch.bool)
    weight = policy_mask.to(policy_logits.dtype)
    count = weight.sum().clamp_min(1.0)
    bce_policy = (F.binary_cross_entropy_with_logits(policy_logits, torch.zeros_like(policy_logits),
                                                     reduction="none") * weight).sum() / count
    bce = 0.5 * (bce_demo + bce_policy)
    penalty = gradient_penalty(demo_logits, demo_inputs)
    logit_reg = disc.logit.weight.square().sum()
    weight_decay = torch.stack([w.square().sum() for w in disc.weights()]).sum()
    loss = bce + cfg.grad_penalty * penalty + cfg.logit_reg * logit_reg + cfg.weight_decay * weight_decay
    with torch.no_grad():
        stats = {
            "bce": bce.detach(),
            "grad_penalty": penalty.detach(),
            "logit_reg": logit_reg.detach(),
            "weight_decay": weight_decay.detach(),
            "demo_accuracy": (demo_logits > 0).float().mean(),
            "policy_accuracy": ((policy_logits < 0).float() * weight).sum() / count,
            "demo_logit": demo_logits.mean(),
            "policy_logit": (policy_logits * weight).sum() / count,
        }
    return {"loss": loss, **stats}


def style_reward(logits: torch.Tensor) -> torch.Tensor:
    """-log(max(1 - sigmoid(logit), 1e-4)) * 2: high where the discriminator takes the motion for demo."""
    prob_policy = 1.0 - torch.sigmoid(logits)
    return -torch.log(torch.clamp_min(prob_policy, STYLE_REWARD_MIN_PROB)) * STYLE_REWARD_SCALE


class RunningMeanStd(nn.Module):
    """Running mean and variance of features (parallel-merge update); normalise() clips to +-NORMALISER_CLIP.

    Statistics are float64 buffers (saved with the model's state dict) on the module's device.
    """

    def __init__(self, size: int, clip: float = NORMALISER_CLIP):
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self._scale_cache = None  # (mean, 1 / std) in the dtype last normalised, until the next update

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, self.mean.shape[0])
        batch_count = x.shape[0]
        if batch_count == 0:
            return
        batch_var, batch_mean = torch.var_mean(x, dim=0, unbiased=False)  # in the input's dtype: cheap
        batch_var, batch_mean = batch_var.to(torch.float64), batch_mean.to(torch.float64)
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean += delta * (batch_count / total)
        merged_m2 = self.var * self.count + batch_var * batch_count + delta.square() * self.count * batch_count / total
        self.var.copy_(merged_m2 / total)
        self.count.copy_(total)
        self._scale_cache = None

    def _scale(self, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        cache = getattr(self, "_scale_cache", None)
        if cache is None or cache[0].dtype != dtype or cache[0].device != self.mean.device:
            cache = (self.mean.to(dtype), torch.rsqrt(self.var + NORMALISER_EPS).to(dtype))
            self._scale_cache = cache
        return cache

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, inv_std = self._scale(x.dtype)
        return torch.clamp((x - mean) * inv_std, -self.clip, self.clip)

    def _load_from_state_dict(self, *args, **kwargs):
        self._scale_cache = None
        super()._load_from_state_dict(*args, **kwargs)


# Demo samples fetched from the motion library at once when a buffer is filled (bounds its batch).
DEMO_FETCH_CHUNK = 16384


def fill_demo(buffer: "ReplayBuffer", fetch, n: int) -> None:
    """Store n demo AMP observations, fetched by fetch(k) -> [k, F] in chunks of at most DEMO_FETCH_CHUNK."""
    while n > 0:
        k = min(n, DEMO_FETCH_CHUNK)
        buffer.store(fetch(k))
        n -= k


class ReplayBuffer:
    """Ring buffer of feature rows on a device; sample() draws uniformly among the rows stored so far.

    keep_prob: once the buffer is full, each newly offered row is kept with this probability. The published AMP
    setup keeps policy samples with probability 0.01 (reference §5), so the replay holds a long history of past
    policies rather than only the last few epochs. Before the buffer is full every row is kept. Use 1.0 for the
    demo buffer.
    """

    def __init__(self, capacity: int, feature_size: int, device, keep_prob: float = 1.0, dtype=torch.float32,
                 generator: torch.Generator | None = None):
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be >= 1, got {capacity}")
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError(f"replay keep probability must be in (0, 1], got {keep_prob}")
        self.capacity = int(capacity)
        self.keep_prob = float(keep_prob)
        self.data = torch.zeros(self.capacity, feature_size, dtype=dtype, device=device)
        self.head = 0  # next row to write
        self.count = 0  # rows holding data
        self.generator = generator

    def __len__(self) -> int:
        return self.count

    def _rand(self, n: int) -> torch.Tensor:
        return torch.rand(n, device=self.data.device, generator=self.generator)

    def store(self, rows: torch.Tensor) -> int:
        """Offer rows [n, F]; returns how many were written (a sync, for logging and tests)."""
        rows = rows.reshape(-1, self.data.shape[1])
        if self.count >= self.capacity and self.keep_prob < 1.0:
            rows = rows[self._rand(rows.shape[0]) < self.keep_prob]
        if rows.shape[0] > self.capacity:  # more than fits: a random subset, so no part of the batch is favoured
            rows = rows[torch.argsort(self._rand(rows.shape[0]))[: self.capacity]]
        n = rows.shape[0]
        first = min(n, self.capacity - self.head)
        self.data[self.head : self.head + first] = rows[:first]
        if n > first:
            self.data[: n - first] = rows[first:]
        self.head = (self.head + n) % self.capacity
        self.count = min(self.count + n, self.capacity)
        return n

    def state_dict(self, max_bytes: int, sample: bool = False) -> dict | None:
        """The rows held and the write position when they take at most max_bytes; otherwise, with sample=True, a
        uniform sample of as many rows as fit (drawn from a generator of its own: the random streams are left
        alone), else None."""
        rows = self.data[:self.count]
        fit = max_bytes // max(1, rows[:1].nbytes) if self.count else 0
        if self.count <= fit:
            return {"data": rows, "head": self.head, "count": self.count, "held": self.count}
        if not sample:
            return None
        pick = torch.randperm(self.count, generator=torch.Generator().manual_seed(self.count))[:fit]
        return {"data": rows[pick.to(rows.device)], "head": fit % self.capacity, "count": fit, "held": self.count}

    def load_state_dict(self, state: dict) -> None:
        data = state["data"]
        if data.dim() != 2 or data.shape[1] != self.data.shape[1] or data.shape[0] != state["count"]:
            raise ValueError(f"a buffer of {tuple(data.shape)} rows cannot fill one of {self.data.shape[1]} features")
        count = min(int(state["count"]), self.capacity)
        self.data[:count] = data[:count].to(self.data)
        self.count, self.head = count, int(state["head"]) % self.capacity

    def sample(self, n: int) -> torch.Tensor:
        if self.count == 0:
            raise RuntimeError("sampling from an empty replay buffer")
        idx = torch.randint(0, self.count, (n,), device=self.data.device, generator=self.generator)
        return self.data[idx]
