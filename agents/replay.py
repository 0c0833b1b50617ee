"""Replay of transitions from every environment, for the off-policy AMP learner (coohoi.agents.offpolicy).

Each row (controlled humanoid) has a ring of its last `steps` transitions, written by all rows at once every env
step (time-major per row, so a row's transitions t, t+1, ... sit next to each other for n-step returns), and a ring
of AMP feature frames. A transition stores each frame once: the frame of the state it reached, plus, when its
episode ended, the AMP history the next episode starts from (a reference clip's past frames, or the start frame
repeated), written oldest first. So a row's frames form one sequence in which the AMP history of any transition is
the `amp_history` frames ending at its own: built by index, it equals the env's info["amp_obs"] exactly, at a tenth
of the memory of a stored history (10 frames x 125 numbers per transition, 2.5 GB per million at float32 for the
history alone).

The frame ring holds `frame_steps` frames per row (by default twice the transition ring, enough while episodes
average at least amp_history steps). A sampled transition whose oldest frame was already overwritten is reported
invalid (its mask is False) rather than given a wrong history. Transitions whose physics failed (the env's
info["faulted"]) are never learned from: a window stops before one, and one that starts there is invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ReplaySample:
    """A batch of n-step windows [B, ...]: the first transition's obs and action, and per step k < n its task reward,
    AMP history, and whether it counts (the window stops after an episode end or at the newest transition); the
    bootstrap observation after the last counted step, whether that step terminated, how many steps counted, and
    whether the window is usable: its first step did not fail and every frame of its histories is still in the
    ring."""

    obs: torch.Tensor  # [B, num_obs]
    action: torch.Tensor  # [B, num_actions]
    task_reward: torch.Tensor  # [B, n]
    amp_obs: torch.Tensor  # [B, n, amp_history * F]
    counts: torch.Tensor  # [B, n] bool
    next_obs: torch.Tensor  # [B, num_obs]
    terminated: torch.Tensor  # [B] bool: no bootstrap
    num_steps: torch.Tensor  # [B] long, 1..n
    valid: torch.Tensor  # [B] bool


class TransitionReplay:
    # What a checkpoint holds of it (with count).
    STATE = ("obs", "next_obs", "action", "task_reward", "terminated", "ended", "faulted", "frame_index", "frames",
             "frame_head")

    def __init__(self, rows: int, steps: int, num_obs: int, num_actions: int, amp_history: int, feature_size: int,
                 device, frame_steps: int | None = None, generator: torch.Generator | None = None):
        if steps < 2:
            raise ValueError(f"a replay needs at least 2 steps per row, got {steps}")
        self.rows, self.steps, self.history = rows, steps, amp_history
        self.frame_steps = frame_steps or 2 * steps
        f32 = dict(dtype=torch.float32, device=device)
        self.obs = torch.zeros(rows, steps, num_obs, **f32)
        self.next_obs = torch.zeros(rows, steps, num_obs, **f32)
        self.action = torch.zeros(rows, steps, num_actions, **f32)
        self.task_reward = torch.zeros(rows, steps, **f32)
        self.terminated = torch.zeros(rows, steps, dtype=torch.bool, device=device)
        self.ended = torch.zeros(rows, steps, dtype=torch.bool, device=device)
        self.faulted = torch.zeros(rows, steps, dtype=torch.bool, device=device)
        self.frame_index = torch.zeros(rows, steps, dtype=torch.long, device=device)
        self.frames = torch.zeros(rows, self.frame_steps, feature_size, **f32)
        self.frame_head = torch.zeros(rows, dtype=torch.long, device=device)  # frames written so far, per row
        self.count = 0  # env steps written so far (all rows together)
        self.device = torch.device(device)
        self.generator = generator
        self._row_index = torch.arange(rows, device=device)
        self._back = torch.arange(amp_history, device=device)

    def _write_frames(self, frames: torch.Tensor, where: torch.Tensor | None = None) -> None:
        """Append frames [rows, k, F] (oldest first) to the rows in `where` [rows] bool (all rows if None)."""
        k = frames.shape[1]
        pos = (self.frame_head[:, None] + torch.arange(k, device=self.device)) % self.frame_steps
        rows = self._row_index[:, None]
        if where is None:
            self.frames[rows, pos] = frames.to(self.frames.dtype)
            self.frame_head += k
        else:
            keep = self.frames[rows, pos]
            self.frames[rows, pos] = torch.where(where[:, None, None], frames.to(keep.dtype), keep)
            self.frame_head += k * where.long()

    def start(self, amp_hist: torch.Tensor) -> None:
        """The rows' current AMP histories [rows, amp_history, F] (newest first), before the first add()."""
        self._write_frames(amp_hist.flip(1))

    def add(self, obs, action, task_reward, next_obs, terminated, ended, frame, next_hist, faulted=None) -> None:
        """One env step of every row: obs [rows, D] and action [rows, A] taken there, the task reward, the
        observation reached (before any reset; for ended rows the final observation), terminated / ended [rows]
        bool, frame [rows, F]: the AMP features of the state reached, next_hist [rows, amp_history, F]: the AMP
        history after the step's resets (only ended rows' are used: their next episode's start), and faulted
        [rows] bool: transitions whose physics failed, which are never learned from."""
        slot = self.count % self.steps
        self._write_frames(frame[:, None])
        self.frame_index[:, slot] = self.frame_head - 1
        self._write_frames(next_hist.flip(1), where=ended)
        self.obs[:, slot] = obs
        self.action[:, slot] = action
        self.task_reward[:, slot] = task_reward
        self.next_obs[:, slot] = next_obs
        self.terminated[:, slot] = terminated
        self.ended[:, slot] = ended
        self.faulted[:, slot] = False if faulted is None else faulted
        self.count += 1

    def state_dict(self, max_bytes: int) -> dict | None:
        """Every transition and frame held, or None when they take more than max_bytes (a resumed run refills)."""
        tensors = {name: getattr(self, name) for name in self.STATE}
        if sum(t.nbytes for t in tensors.values()) > max_bytes:
            return None
        return {**tensors, "count": self.count, "held": self.count}

    def load_state_dict(self, state: dict) -> None:
        """Take over a state_dict(). Each row's newest transition is marked as an episode end (not a termination:
        it bootstraps from the observation it reached), so that no n-step window runs on into the episodes the
        resumed run starts."""
        for name in self.STATE:
            mine, saved = getattr(self, name), state[name]
            if saved.shape != mine.shape:
                raise ValueError(f"replay field {name} has shape {tuple(saved.shape)} in the checkpoint, "
                                 f"{tuple(mine.shape)} here (train.td3.buffer_steps or the task differ)")
            mine.copy_(saved)
        self.count = int(state["count"])
        if self.count:
            self.ended[:, (self.count - 1) % self.steps] = True

    def amp_obs(self, rows: torch.Tensor, frame_index: torch.Tensor) -> torch.Tensor:
        """AMP histories [..., amp_history * F] (newest first) of the transitions with these frame indices."""
        idx = (frame_index.unsqueeze(-1) - self._back) % self.frame_steps
        return self.frames[rows.unsqueeze(-1), idx].flatten(-2)

    def sample(self, batch_size: int, n_step: int) -> ReplaySample:
        """batch_size n-step windows, uniform over the stored transitions."""
        stored = min(self.count, self.steps)
        if stored == 0:
            raise RuntimeError("sampling from an empty replay")
        g = self.generator
        rows = torch.randint(0, self.rows, (batch_size,), device=self.device, generator=g)
        age = torch.randint(0, stored, (batch_size,), device=self.device, generator=g)  # 0 = the newest
        k = torch.arange(n_step, device=self.device)
        ages = age[:, None] - k  # the window's steps, oldest first; negative ages are not written yet
        slots = (self.count - 1 - ages) % self.steps
        r = rows[:, None]
        ended = self.ended[r, slots]
        before_end = torch.cumsum(ended.long(), dim=1) - ended.long()  # episode ends before step k of the window
        faulted = torch.cumsum(self.faulted[r, slots].long(), dim=1)  # a failed step, at or before step k
        counts = (ages >= 0) & (before_end == 0) & (faulted == 0)
        num_steps = counts.sum(dim=1)
        last = slots.gather(1, (num_steps - 1).clamp_min(0)[:, None]).squeeze(1)
        frame_index = self.frame_index[r, slots]
        oldest_needed = frame_index.masked_fill(~counts, 2**62).amin(dim=1) - (self.history - 1)
        valid = (oldest_needed > self.frame_head[rows] - self.frame_steps) & (num_steps > 0)
        return ReplaySample(
            obs=self.obs[rows, slots[:, 0]], action=self.action[rows, slots[:, 0]],
            task_reward=self.task_reward[r, slots], amp_obs=self.amp_obs(r, frame_index), counts=counts,
            next_obs=self.next_obs[rows, last], terminated=self.terminated[rows, last], num_steps=num_steps,
            valid=valid)
