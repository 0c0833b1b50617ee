"""The assistance curriculum's schedule (train.assist): the level of the virtual pelvis forces (coohoi.envs.assist),
from 1 at the start to 0, after each epoch. Learner-independent: both learners call update() once per epoch."""

from __future__ import annotations

from coohoi.agents.config import AssistConfig


class AssistCurriculum:
    """linear: the level falls from 1 to 0 over cfg.anneal_frames frames. adaptive: the level drops by cfg.step
    each time the training episode length reaches cfg.threshold of the longest episode, at most once every
    cfg.patience epochs (Yu et al. lower the assistance whenever the policy reaches a performance threshold), and
    never stays above the linear schedule, so that it ends by cfg.anneal_frames even if the policy stalls."""

    def __init__(self, cfg: AssistConfig, max_episode_length: int):
        self.cfg = cfg
        self.max_episode_length = max_episode_length
        self.level = 1.0 if cfg.enabled else 0.0
        self._last_change = 0

    def update(self, epoch: int, frames: int, episode_length: float | None) -> float:
        """The level for the next epoch, from this epoch's frame count and training episode length."""
        c = self.cfg
        if self.level <= 0.0:
            return 0.0
        linear = max(0.0, 1.0 - frames / max(c.anneal_frames, 1))
        if (c.schedule == "adaptive" and episode_length is not None and epoch - self._last_change >= c.patience
                and episode_length >= c.threshold * self.max_episode_length):
            self.level = max(0.0, round(self.level - c.step, 9))
            self._last_change = epoch
        self.level = linear if c.schedule == "linear" else min(self.level, linear)
        return self.level

    def state_dict(self) -> dict:
        return {"level": self.level, "last_change": self._last_change}

    def load_state_dict(self, state: dict) -> None:
        self.level = float(state["level"])
        self._last_change = int(state["last_change"])
