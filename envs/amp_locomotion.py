"""AMP locomotion: the humanoid only has to move like the reference clips. Task reward 0, style reward only; the
simplest check that AMP works."""

from __future__ import annotations

import torch

from coohoi.engine.base import HumanoidState, ObjectState
from coohoi.envs.config import AmpLocomotionEnvConfig
from coohoi.envs.humanoid_env import HumanoidEnv


class AmpLocomotionEnv(HumanoidEnv):
    cfg: AmpLocomotionEnvConfig

    def _object_starts(self, humanoid: HumanoidState) -> tuple[ObjectState, dict[str, torch.Tensor]]:
        """The scene's object, parked far away on the ground."""
        n = humanoid.root_pos.shape[0]
        pos = torch.zeros(n, 3, dtype=self.dtype, device=self.device)
        pos[:, 0], pos[:, 1] = self.cfg.object_park_xy
        pos[:, 2] = self.engine.object_base_half_extents[2]
        quat = torch.zeros(n, 4, dtype=self.dtype, device=self.device)
        quat[:, 0] = 1.0
        return ObjectState(pos, quat, torch.zeros_like(pos), torch.zeros_like(pos)), {}
