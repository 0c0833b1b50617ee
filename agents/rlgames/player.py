"""The AMP player: rl-games' continuous PPO player with checkpoint validation (the discriminator is not used)."""

from __future__ import annotations

import torch
from rl_games.algos_torch import players

from coohoi.agents.checkpoint import check_model_fits, load_checkpoint


class AMPPlayer(players.PpoPlayerContinuous):
    def __init__(self, params):
        super().__init__(params)
        self.has_batch_dimension = True  # coohoi envs are always batched: obs [rows, num_obs]
        self.metadata = dict(self.config.get("metadata", {}))

    def restore(self, fn):
        state = load_checkpoint(fn, map_location=self.device)
        check_model_fits(fn, state, self.model, self.metadata.get("task"))
        self.model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in state["model"].items()})
        self.checkpoint_metadata = state.get("coohoi", {})

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions [rows, num_actions] in [-1, 1] for observations [rows, num_obs]."""
        return self.get_action(obs, is_deterministic=deterministic)
