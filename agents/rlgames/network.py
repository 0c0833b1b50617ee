"""rl-games network builder and model for AMP: the actor-critic plus the discriminator and its feature normaliser.

Network params (rl-games `network:` section) are those of rl-games' `actor_critic` builder plus
    disc: {units: [1024, 512], activation: relu, input_size: <env.num_amp_obs>}
and, under `space.continuous`, `learn_sigma: false` for the published fixed action std (exp(sigma_init)) and an
optional `mu_bias` (one value per action) that initialises the action-mean layer's bias.
"""

from __future__ import annotations

import torch
from rl_games.algos_torch import models, network_builder

from coohoi.agents.amp_modules import Discriminator, RunningMeanStd


class AMPBuilder(network_builder.A2CBuilder):
    """rl-games' actor-critic MLP builder, with a discriminator in the same network."""

    def build(self, name, **kwargs):
        return AMPBuilder.Network(self.params, **kwargs)

    class Network(network_builder.A2CBuilder.Network):
        def __init__(self, params, **kwargs):
            super().__init__(params, **kwargs)
            disc = params.get("disc")
            if not disc or "input_size" not in disc:
                raise ValueError("network.disc.input_size (the AMP feature size) is required by the AMP network")
            self.disc = Discriminator(int(disc["input_size"]), tuple(disc["units"]), disc.get("activation", "relu"))
            continuous = params["space"]["continuous"]
            mu_bias = continuous.get("mu_bias")
            if mu_bias is not None:  # where the untrained policy's mean action points (rl-games starts it at 0)
                with torch.no_grad():
                    self.mu.bias.copy_(torch.as_tensor(mu_bias, dtype=self.mu.bias.dtype))
            learn_sigma = continuous.get("learn_sigma", True)
            if self.fixed_sigma and not learn_sigma:
                self.sigma.requires_grad_(False)


class ModelAMPContinuous(models.ModelA2CContinuousLogStd):
    """Gaussian policy with state-independent log-std, value head, and the discriminator with its normaliser."""

    class Network(models.ModelA2CContinuousLogStd.Network):
        def __init__(self, a2c_network, **kwargs):
            super().__init__(a2c_network, **kwargs)
            self.amp_mean_std = RunningMeanStd(a2c_network.disc.input_size)

        @property
        def disc(self) -> Discriminator:
            return self.a2c_network.disc

        def normalize_amp_obs(self, amp_obs: torch.Tensor) -> torch.Tensor:
            return self.amp_mean_std.normalize(amp_obs)

        def disc_logits(self, amp_obs: torch.Tensor) -> torch.Tensor:
            """Discriminator logits [B] of raw (unnormalised) AMP features [B, F]."""
            return self.a2c_network.disc(self.amp_mean_std.normalize(amp_obs))
