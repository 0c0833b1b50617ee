"""The off-policy AMP learner (train.algo=td3): TD3 with AMP, in the spirit of FastTD3 (Seo et al. 2025) and
discriminator actor-critic (Kostrikov et al. 2019). Our own compact loop, without rl-games.

Four verbs, as in rsl_rl's PPO:
- act: the deterministic actor's action, plus exploration noise of a std each environment keeps for its episode;
- process_step: store the transition of every environment in the replay (agents.replay), frames of AMP features
  once each, and update the observation and AMP normalisers;
- compute_returns: for a sampled batch of n-step windows, recompute each step's style reward with the current
  discriminator, add the task reward, and bootstrap from the clipped double critic's target;
- update: the critics every update, the actor and the discriminator every few (train.td3.policy_delay, disc_every),
  soft target updates.

It runs on the CPU and on CUDA from the same code, keeps every tensor on the env's device, and writes the same
checkpoints (nn/last.pth, atomic), tensorboard logs, metrics and progress lines as the PPO learner (through the
run's TrainingSession). nn/last.pth also holds the random streams (the learner's generator, the global ones and the
env's), the exploration stds and the replay and demo buffers up to train.checkpoint_buffer_mib each (a larger one is
refilled by the resumed run).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from coohoi.agents.amp_modules import (
    ACTIVATIONS,
    DiscLossConfig,
    Discriminator,
    ReplayBuffer,
    RunningMeanStd,
    discriminator_loss,
    fill_demo,
    style_reward,
)
from coohoi.agents.checkpoint import (
    CheckpointError,
    load_checkpoint,
    restore_resume_state,
    resume_state,
    run_provenance,
    save_atomic,
)
from coohoi.agents.config import TrainConfig
from coohoi.agents.distributed import SINGLE, Distributed
from coohoi.agents.evaluation import training_episode_metrics
from coohoi.agents.replay import TransitionReplay
from coohoi.agents.train import NO_STOP_REQUEST, save_after_epoch, save_last
from coohoi.envs.contract import faulted_rows


def mlp(sizes: list[int], activation: str, layer_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b)] + ([nn.LayerNorm(b)] if layer_norm else []) + [ACTIVATIONS[activation]()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Deterministic policy: normalised observation -> tanh -> action in [-1, 1]. The output layer starts at
    init_scale, so the untrained actor acts close to the zero action."""

    def __init__(self, num_obs: int, num_actions: int, units: list[int], activation: str, init_scale: float):
        super().__init__()
        self.net = mlp([num_obs, *units, num_actions], activation)
        last = self.net[-1]
        nn.init.uniform_(last.weight, -init_scale, init_scale)
        nn.init.zeros_(last.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))


class DoubleCritic(nn.Module):
    """Two Q networks over (normalised observation, action)."""

    def __init__(self, num_obs: int, num_actions: int, units: list[int], activation: str, layer_norm: bool):
        super().__init__()
        self.q1 = mlp([num_obs + num_actions, *units, 1], activation, layer_norm)
        self.q2 = mlp([num_obs + num_actions, *units, 1], activation, layer_norm)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat((obs, action), dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class OffPolicyAMP:
    """See the module docstring. Built by coohoi.agents.train.make_agent for train.algo=td3."""

    algo = "td3"

    def __init__(self, cfg, t: TrainConfig, env, *, max_epochs: int | None = None, on_epoch_end=None,
                 dist: Distributed = SINGLE):
        self.cfg, self.t, self.c, self.env, self.dist = cfg, t, t.td3, env, dist
        c = self.c
        self.device = torch.device(env.device)
        dev = self.device
        self.max_epochs = int(max_epochs if max_epochs is not None else t.max_epochs)
        self.on_epoch_end = on_epoch_end
        self.session = None
        self.stop_request = NO_STOP_REQUEST  # coohoi.agents.train.StopRequest: Ctrl-C taken between steps
        self.rows, self.num_obs, self.num_actions = env.num_rows, env.num_obs, env.num_actions
        self.num_amp_obs = env.num_amp_obs
        from coohoi.agents.train import learn_threads, rollout_threads

        self.rollout_threads, self.learn_threads = rollout_threads(cfg), learn_threads(cfg)
        self.generator = torch.Generator(device=dev).manual_seed(int(cfg.seed))
        net = t.network
        self.actor = Actor(self.num_obs, self.num_actions, c.actor_units, net.activation, c.actor_init_scale).to(dev)
        self.critic = DoubleCritic(self.num_obs, self.num_actions, c.critic_units, net.activation, c.layer_norm).to(dev)
        self.critic_target = DoubleCritic(self.num_obs, self.num_actions, c.critic_units, net.activation,
                                          c.layer_norm).to(dev)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.disc = Discriminator(self.num_amp_obs, tuple(net.disc_units), net.activation).to(dev)
        self.obs_norm = RunningMeanStd(self.num_obs).to(dev)
        self.amp_norm = RunningMeanStd(self.num_amp_obs).to(dev)
        self.actor_opt = torch.optim.AdamW(self.actor.parameters(), lr=c.actor_learning_rate, weight_decay=c.weight_decay)
        self.critic_opt = torch.optim.AdamW(self.critic.parameters(), lr=c.critic_learning_rate,
                                            weight_decay=c.weight_decay)
        self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=c.disc_learning_rate)
        self.disc_loss_cfg = DiscLossConfig(t.amp.disc_grad_penalty, t.amp.disc_logit_reg, t.amp.disc_weight_decay)
        self.frame_size = self.num_amp_obs // env.amp_history  # AMP features per frame (125 for the humanoid)
        self.replay = TransitionReplay(self.rows, c.buffer_steps, self.num_obs, self.num_actions, env.amp_history,
                                       self.frame_size, dev, generator=self.generator)
        self.demo = ReplayBuffer(t.amp.demo_buffer_size, self.num_amp_obs, dev, generator=self.generator)
        self._fill_demo(self.demo.capacity)
        self.env.keep_final_obs = True  # time-outs bootstrap from the state they reached
        self.epoch_num = 0
        self.frame = 0
        self.updates = 0
        self._stats: dict[str, list] = defaultdict(list)  # this epoch's logged values
        self.last_checkpoint = None
        run_dir = Path(str(cfg.output_dir)) / str(cfg.experiment)
        self.nn_dir, self.summaries_dir = run_dir / "nn", run_dir / "summaries"
        self.writer = None
        self.save_frequency, self.snapshot_frequency = t.save_frequency, t.snapshot_frequency
        self.keep_last = t.keep_last
        self.metadata = {"task": str(cfg.task.name), "algo": self.algo, "num_obs": self.num_obs,
                         "num_actions": self.num_actions, "num_amp_obs": self.num_amp_obs,
                         "actor_units": list(c.actor_units), "critic_units": list(c.critic_units),
                         "disc_units": list(net.disc_units), "activation": net.activation, "layer_norm": c.layer_norm,
                         "obs_normalization": c.obs_normalization, **run_provenance(cfg),
                         "env": env.policy_metadata()}
        self._std = self._sample_std(self.rows)

    # ---- acting ---------------------------------------------------------------------------------------------
    def _sample_std(self, n: int) -> torch.Tensor:
        """Exploration std [n, 1], log-uniform in [noise_std_min, noise_std_max]."""
        lo, hi = math.log(self.c.noise_std_min), math.log(self.c.noise_std_max)
        u = torch.rand(n, 1, generator=self.generator, device=self.device)
        return torch.exp(lo + (hi - lo) * u)

    def noise_std(self, n: int | None = None) -> torch.Tensor:
        """The exploration noise's std for n rows ([n, 1]; a single value when it is fixed)."""
        if self.c.noise_std_min == self.c.noise_std_max:
            return torch.full((1,), self.c.noise_std_min, device=self.device)
        return self._sample_std(n if n is not None else self.rows)

    def _normalized(self, obs: torch.Tensor) -> torch.Tensor:
        return self.obs_norm.normalize(obs) if self.c.obs_normalization else obs

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """The actor's action [rows, A]; with exploration noise of each row's std unless deterministic."""
        action = self.actor(self._normalized(obs))
        if deterministic:
            return action
        std = self._std if obs.shape[0] == self.rows else self.noise_std(obs.shape[0])
        noise = torch.randn(action.shape, generator=self.generator, device=self.device)
        return (action + std * noise).clamp(-1.0, 1.0)

    # ---- collecting -----------------------------------------------------------------------------------------
    def _fill_demo(self, n: int) -> None:
        def fetch(k: int) -> torch.Tensor:
            demo = self.env.fetch_amp_demo(k).to(self.device, torch.float32)
            self.amp_norm.update(demo)
            return demo

        fill_demo(self.demo, fetch, n)

    @torch.no_grad()
    def process_step(self, obs, action, reward, terminated, truncated, info) -> None:
        """Store one env step of every row and update the normalisers."""
        ended = terminated | truncated
        newest = info["amp_obs"][:, :self.frame_size]
        self.replay.add(obs, action, reward, info["final_obs"], terminated, ended, newest,
                        self.env.amp_hist, faulted_rows(info))
        if self.c.obs_normalization:
            self.obs_norm.update(obs)
        self.amp_norm.update(info["amp_obs"])
        self.dist.sync_normalizers(self.obs_norm, self.amp_norm)
        if self.c.noise_std_min < self.c.noise_std_max:  # each episode draws its own std
            self._std = torch.where(ended[:, None], self._sample_std(self.rows), self._std)

    # ---- learning -------------------------------------------------------------------------------------------
    def _style(self, amp_obs: torch.Tensor) -> torch.Tensor:
        return style_reward(self.disc(self.amp_norm.normalize(amp_obs)))

    @torch.no_grad()
    def compute_returns(self, batch) -> torch.Tensor:
        """n-step targets [B]: sum_k gamma^k (w_task r_task + w_style r_style) over the counted steps, plus
        gamma^n times the target critics' minimum at the bootstrap state (none after a termination). The style
        reward comes from the current discriminator (discriminator actor-critic)."""
        c, t = self.c, self.t
        b, n = batch.counts.shape
        style = self._style(batch.amp_obs.flatten(0, 1)).view(b, n)
        reward = t.task_reward_weight * batch.task_reward + t.style_reward_weight * style
        discounts = c.gamma ** torch.arange(n, device=self.device, dtype=reward.dtype)
        returns = (reward * discounts * batch.counts).sum(dim=1)
        next_obs = self._normalized(batch.next_obs)
        smoothing = (c.target_noise * torch.randn(batch.action.shape, generator=self.generator, device=self.device)
                     ).clamp(-c.noise_clip, c.noise_clip)
        next_action = (self.actor(next_obs) + smoothing).clamp(-1.0, 1.0)
        q1, q2 = self.critic_target(next_obs, next_action)
        bootstrap = (~batch.terminated).to(returns.dtype) * c.gamma ** batch.num_steps.to(returns.dtype)
        self._stats["rewards/style_replay"].append(style[:, 0].mean())
        return returns + bootstrap * torch.minimum(q1, q2)

    def update(self) -> None:
        """One critic update on a fresh batch; the actor and the discriminator every policy_delay / disc_every."""
        c = self.c
        batch = self.replay.sample(c.batch_size, c.n_step)
        valid = batch.valid.to(torch.float32)
        target = self.compute_returns(batch)
        obs = self._normalized(batch.obs)
        q1, q2 = self.critic(obs, batch.action)
        critic_loss = (((q1 - target).square() + (q2 - target).square()) * valid).sum() / valid.sum().clamp_min(1)
        self._step(self.critic_opt, critic_loss, self.critic)
        with torch.no_grad():
            for p, tp in zip(self.critic.parameters(), self.critic_target.parameters()):
                tp.lerp_(p, c.tau)
        self.updates += 1
        s = self._stats
        s["losses/critic"].append(critic_loss.detach())
        s["info/q"].append(q1.detach().mean())
        s["info/invalid_histories"].append(1.0 - valid.mean())
        if self.updates % c.policy_delay == 0:
            q1, q2 = self.critic(obs, self.actor(obs))
            actor_loss = -torch.minimum(q1, q2).mean()
            self._step(self.actor_opt, actor_loss, self.actor)
            s["losses/actor"].append(actor_loss.detach())
        if self.updates % c.disc_every == 0:
            # Policy samples: the batch's histories, an invalid one replaced by the first valid (fixed shapes, no
            # host sync; invalid histories are rare, info/invalid_histories).
            rows = torch.arange(batch.valid.shape[0], device=self.device)
            policy = batch.amp_obs[torch.where(batch.valid, rows, batch.valid.long().argmax()), 0]
            demo = self.demo.sample(policy.shape[0])
            demo_in = self.amp_norm.normalize(demo).requires_grad_(True)
            terms = discriminator_loss(self.disc(demo_in), self.disc(self.amp_norm.normalize(policy)), demo_in,
                                       self.disc, self.disc_loss_cfg)
            self._step(self.disc_opt, terms["loss"], self.disc)
            for key, value in terms.items():
                s["amp/disc_loss" if key == "loss" else f"amp/{key}"].append(value.detach())

    def _step(self, optimizer, loss, module) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.dist.average_gradients(module.parameters())
        if self.c.grad_norm > 0:
            nn.utils.clip_grad_norm_(module.parameters(), self.c.grad_norm)
        optimizer.step()

    # ---- the loop -------------------------------------------------------------------------------------------
    def _set_threads(self, n: int) -> None:
        if n and torch.get_num_threads() != n:
            torch.set_num_threads(n)

    def train(self) -> dict[str, float]:
        from torch.utils.tensorboard import SummaryWriter

        if self.dist.is_main:
            self.nn_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.summaries_dir))
        self.dist.broadcast_modules(self.actor, self.critic, self.critic_target, self.disc, self.obs_norm,
                                    self.amp_norm)
        obs = self.env.reset()
        self.replay.start(self.env.amp_hist)
        self.env.episode_summary()
        metrics: dict[str, float] = {}
        try:
            stop = False
            while not stop and (self.max_epochs == -1 or self.epoch_num < self.max_epochs):
                obs, metrics, stop = self._train_epoch(obs)
                save_after_epoch(self, self.epoch_num)
            self.save_last()
        finally:
            if self.writer is not None:
                self.writer.close()
        return metrics

    def _train_epoch(self, obs):
        c, t = self.c, self.t
        self._stats = defaultdict(list)
        env_time = rollout_time = update_time = 0.0
        task_sum = style_sum = torch.zeros((), device=self.device)
        self._fill_demo(t.amp.batch_size)
        start = time.perf_counter()
        for _ in range(c.steps_per_epoch):
            self.stop_request.check()
            t0 = time.perf_counter()
            self._set_threads(self.rollout_threads)
            action = self.act(obs, deterministic=False)
            t1 = time.perf_counter()
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            t2 = time.perf_counter()
            self.process_step(obs, action, reward, terminated, truncated, info)
            with torch.no_grad():
                task_sum = task_sum + reward.mean()
                style_sum = style_sum + self._style(info["amp_obs"]).mean()
                for key, value in info["reward_terms"].items():
                    self._stats[f"reward_terms/{key}"].append(value.mean())
            obs = next_obs
            t3 = time.perf_counter()
            env_time += t2 - t1
            rollout_time += t3 - t0
            if self.replay.count >= c.learning_starts:
                self._set_threads(self.learn_threads)
                for _ in range(c.updates_per_step):
                    self.update()
                update_time += time.perf_counter() - t3
        self.epoch_num += 1
        frames = c.steps_per_epoch * self.rows * self.dist.world_size  # all ranks'
        self.frame += frames
        epoch_time = time.perf_counter() - start
        metrics = {"epoch": self.epoch_num, "frames": self.frame, "frames_epoch": frames,
                   "fps_env": frames / max(env_time, 1e-9), "fps_total": frames / max(epoch_time, 1e-9),
                   "time_env": env_time, "time_rollout": rollout_time, "time_update": update_time}
        stats = {k: torch.stack([torch.as_tensor(v, device=self.device, dtype=torch.float32) for v in vs]).mean()
                 for k, vs in self._stats.items()}
        names = list(stats) + ["rewards/task_per_step", "rewards/style_per_step"]
        values = torch.stack(list(stats.values()) + [task_sum / c.steps_per_epoch, style_sum / c.steps_per_epoch]
                             ).tolist()
        metrics.update(zip(names, values))
        metrics.update(training_episode_metrics(self.env.episode_summary()))
        metrics["info/updates"] = self.updates
        if self.dist.enabled:
            metrics["dist/weight_spread"] = self.dist.weight_spread(
                [*self.actor.parameters(), *self.critic.parameters(), *self.disc.parameters()])
        self._set_threads(self.rollout_threads)
        stop = bool(self.on_epoch_end(self, metrics)) if self.on_epoch_end is not None else False
        if self.writer is not None:
            for key, value in metrics.items():
                if key not in ("epoch", "frames") and isinstance(value, (int, float)):
                    self.writer.add_scalar(key if "/" in key else f"performance/{key}", value, self.frame)
            self.writer.flush()
        return obs, metrics, stop

    # ---- checkpoints ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {
            "model": {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                      "critic_target": self.critic_target.state_dict(), "disc": self.disc.state_dict(),
                      "obs_norm": self.obs_norm.state_dict(), "amp_norm": self.amp_norm.state_dict()},
            "optimizer": {"actor": self.actor_opt.state_dict(), "critic": self.critic_opt.state_dict(),
                          "disc": self.disc_opt.state_dict()},
            "epoch": self.epoch_num, "frame": self.frame, "updates": self.updates,
            "coohoi": dict(self.metadata),
        }
        if self.session is not None:
            state["session"] = self.session.state_dict()
        return state

    def save(self, path, resume: bool = False, **metadata) -> str:
        """Write the training state atomically (with resume=True also the random streams, exploration stds and
        buffers: nn/last.pth); metadata joins the checkpoint's "coohoi" metadata."""
        state = self.state_dict()
        state["coohoi"].update(metadata)
        if resume:
            state["resume"] = resume_state({"replay": self.replay, "demo": self.demo},
                                           int(self.t.checkpoint_buffer_mib * 2**20))
            state["resume"].update(generator=self.generator.get_state(), std=self._std, env=self.env.get_state())
        return save_atomic(state, path)

    def save_last(self) -> str:
        return save_last(self)

    def restore(self, path, set_epoch: bool = True) -> None:
        """Load a checkpoint of this learner. set_epoch=True resumes (optimisers, counters, curriculum); False takes
        the networks and normalisers only (fine-tuning)."""
        state = load_checkpoint(path, map_location=self.device)
        check_fits(path, state, self.metadata)
        model = state["model"]
        for name, module in (("actor", self.actor), ("critic", self.critic), ("critic_target", self.critic_target),
                             ("disc", self.disc), ("obs_norm", self.obs_norm), ("amp_norm", self.amp_norm)):
            module.load_state_dict(model[name])
        if set_epoch:
            for name, opt in (("actor", self.actor_opt), ("critic", self.critic_opt), ("disc", self.disc_opt)):
                opt.load_state_dict(state["optimizer"][name])
            self.epoch_num, self.frame, self.updates = int(state["epoch"]), int(state["frame"]), int(state["updates"])
            if self.session is not None and "session" in state:
                self.session.load_state_dict(state["session"])
            resume = state.get("resume")
            restore_resume_state(path, resume, {"replay": self.replay, "demo": self.demo})
            if resume is not None:
                self.generator.set_state(resume["generator"])
                self._std = resume["std"].to(self.device)
                self.env.set_state(resume["env"])


def check_fits(path, state: dict, metadata: dict) -> None:
    """Refuse a checkpoint of another learner, task or network, naming the difference."""
    saved = state.get("coohoi", {})
    if saved.get("algo") != metadata["algo"]:
        raise CheckpointError(f"checkpoint {str(path)!r} was written by learner {saved.get('algo')!r}, this run uses "
                              f"{metadata['algo']!r} (train.algo)")
    keys = ("num_obs", "num_actions", "num_amp_obs", "actor_units", "critic_units", "disc_units", "activation",
            "layer_norm")
    diffs = [f"{k} {saved.get(k)!r} in the checkpoint, {metadata[k]!r} here" for k in keys if saved.get(k) != metadata[k]]
    if diffs:
        trained_for = saved.get("task")
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit this network (it was trained for task "
                              f"{trained_for!r}, this run is {metadata['task']!r}): " + "; ".join(diffs))


__all__ = ["Actor", "DoubleCritic", "OffPolicyAMP", "check_fits"]
