"""The AMP agent: rl-games' continuous PPO agent plus a motion discriminator (reference §5-6).

Per epoch:
1. refresh the demo buffer with `amp.batch_size` new demo samples from the motion library;
2. roll out `horizon_length` steps, keeping the task reward and the AMP features of every transition
   (info["amp_obs"]), all on the env's device;
3. style reward = -log(max(1 - sigmoid(D(amp_obs)), 1e-4)) * 2 in one batched pass, and
   reward = task_reward_weight * task + style_reward_weight * style (+ the value bootstrap on time-outs);
4. PPO mini-epochs; every minibatch also trains the discriminator on `amp.minibatch_size` rollout, replay and demo
   samples (BCE, gradient penalty, logit regularisation, weight decay), scaled by `amp.disc_coef`;
5. offer the rollout's AMP features to the policy replay buffer.

Teams (MAPPO): agents are rows of the batch with one shared actor; the critic reads the agent's own observation, or
(train.ppo.critic=central) rl-games' central value network reads the env's critic group. Rows the env marks inactive
(info["agent_mask"]: parked team slots) earn no reward and are left out of the advantage normalisation, the actor,
critic and central value losses (rl-games' loss masks, weighted to a mean over active rows), the observation
normaliser's statistics, the discriminator's policy samples, the replay buffer and the episode statistics.

Transitions of worlds whose physics failed (info["faulted"]: reset by the env) are left out the same way, and their
return is set to their state's value, so that their advantage is 0 and the steps before them bootstrap from the
last valid state, as at a time-out.

The AMP feature normaliser is updated in the first mini-epoch with every sample the discriminator sees.
Training settings come from rl-games' `config` section plus `config.amp` (see cfg/task/*.yaml, `train.amp`).
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict

import torch
from rl_games.algos_torch import a2c_continuous, torch_ext
from rl_games.common.a2c_common import swap_and_flatten01

from coohoi.agents.amp_modules import (
    DiscLossConfig,
    ReplayBuffer,
    discriminator_loss,
    fill_demo,
    gaussian_kl,
    style_reward,
)
from coohoi.agents.checkpoint import check_model_fits, load_checkpoint, restore_resume_state, resume_state, save_atomic
from coohoi.agents.distributed import SINGLE, Distributed
from coohoi.agents.evaluation import training_episode_metrics
from coohoi.agents.train import NO_STOP_REQUEST, save_after_epoch, save_last
from coohoi.envs.contract import faulted_rows

# Style rewards are computed over the rollout in chunks of this many rows (bounds discriminator activations).
STYLE_REWARD_CHUNK = 16384


class AMPAgent(a2c_continuous.A2CAgent):
    def __init__(self, base_name, params):
        super().__init__(base_name, params)
        if self.is_rnn:
            raise ValueError("the AMP agent supports MLP policies only (network.rnn is not supported)")
        config = self.config
        amp = config["amp"]
        self.task_reward_weight = float(config["task_reward_weight"])
        self.style_reward_weight = float(config["style_reward_weight"])
        self.disc_coef = float(amp["disc_coef"])
        self.disc_loss_cfg = DiscLossConfig(
            grad_penalty=float(amp["disc_grad_penalty"]),
            logit_reg=float(amp["disc_logit_reg"]),
            weight_decay=float(amp["disc_weight_decay"]),
        )
        self.disc_learning_rate = amp.get("disc_learning_rate")
        if self.disc_learning_rate is not None:
            # Two parameter groups: the policy's step size follows the schedule, the discriminator's stays fixed.
            disc_params = list(self.model.disc.parameters())
            disc_ids = {id(p) for p in disc_params}
            self.optimizer = torch.optim.Adam(
                [{"params": [p for p in self.model.parameters() if id(p) not in disc_ids]},
                 {"params": disc_params, "lr": float(self.disc_learning_rate)}],
                float(self.last_lr), eps=1e-08, weight_decay=self.weight_decay)
        self.amp_minibatch_size = min(int(amp["minibatch_size"]), self.minibatch_size)
        self.amp_batch_size = int(amp["batch_size"])
        amp_size = self.env_info["amp_observation_space"].shape[0]
        if self.model.disc.input_size != amp_size:
            raise ValueError(
                f"network.disc.input_size is {self.model.disc.input_size} but the env's AMP features have "
                f"{amp_size} numbers"
            )
        self.num_amp_obs = amp_size
        self.demo_buffer = ReplayBuffer(int(amp["demo_buffer_size"]), amp_size, self.ppo_device)
        self.replay_buffer = ReplayBuffer(
            int(amp["replay_buffer_size"]), amp_size, self.ppo_device, keep_prob=float(amp["replay_keep_prob"])
        )
        self._fill_demo_buffer(self.demo_buffer.capacity)
        self.metadata = dict(config.get("metadata", {}))
        self.on_epoch_end = config.get("on_epoch_end")  # callable(agent, metrics dict) from coohoi.agents.train
        self.save_frequency = int(config.get("save_frequency", 0))
        self.snapshot_frequency = int(config.get("snapshot_frequency", 0))
        self.keep_last = int(config.get("keep_last", 0))
        self.checkpoint_buffer_bytes = int(float(config.get("checkpoint_buffer_mib", 0.0)) * 2**20)
        self.last_checkpoint = None
        self.rollout_threads = int(config.get("rollout_threads", 0))
        self.learn_threads = int(config.get("learn_threads", 0))
        self.session = None  # coohoi.agents.train.TrainingSession, when run by `coohoi train`
        self.dist = SINGLE
        self.stop_request = NO_STOP_REQUEST  # coohoi.agents.train.StopRequest: Ctrl-C taken between steps

    def use_distributed(self, ctx: Distributed) -> None:
        """Train as one rank of ctx (coohoi.agents.distributed): rl-games' own gradient and KL averaging, switched
        on here because its multi-GPU mode would start an NCCL process group itself; rank 0's weights everywhere;
        no tensorboard writer but rank 0's."""
        self.dist = ctx
        if not ctx.enabled:
            return
        central = self.central_value_net if self.has_central_value else None
        for net in filter(None, (self, central)):
            net.multi_gpu, net.world_size, net.global_rank, net.local_rank = (True, ctx.world_size, ctx.rank,
                                                                               ctx.local_rank)
        if not ctx.is_main:  # its writer and folders are in a temporary train_dir (make_agent)
            self.writer.close()
            self.writer = None
            shutil.rmtree(self.train_dir, ignore_errors=True)
        ctx.broadcast_modules(self.model, central)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions [rows, num_actions] for observations: the Gaussian's mean, or a sample with its std."""
        was_training = self.model.training
        self.model.eval()
        res = self.model({"is_train": False, "obs": self._preproc_obs(obs), "prev_actions": None})
        if was_training:
            self.model.train()
        return res["mus"] if deterministic else res["actions"]

    def noise_std(self, n: int | None = None) -> torch.Tensor:
        """The policy's action std [num_actions] for any number of rows (exp of the log-std parameter: fixed as
        published, or learned)."""
        return torch.exp(self.model.a2c_network.sigma.detach()).to(self.ppo_device)

    def update_lr(self, lr):
        """Set the policy's step size (and the discriminator's unless disc_learning_rate fixes it)."""
        groups = self.optimizer.param_groups
        for group in groups if self.disc_learning_rate is None else groups[:1]:
            group["lr"] = lr

    # ---------------------------------------------------------------- buffers
    def _fill_demo_buffer(self, num_samples: int) -> None:
        fill_demo(self.demo_buffer, self._fetch_demo, num_samples)

    def _fetch_demo(self, num_samples: int) -> torch.Tensor:
        demo = self.vec_env.fetch_amp_demo(num_samples)
        return demo.to(self.ppo_device, torch.float32)

    def init_tensors(self):
        super().init_tensors()
        buf = self.experience_buffer.tensor_dict
        rows = self.num_actors * self.num_agents
        base = (self.horizon_length, rows)
        buf["amp_obs"] = torch.zeros(base + (self.num_amp_obs,), device=self.ppo_device)
        buf["task_rewards"] = torch.zeros(base + (1,), device=self.ppo_device)
        buf["style_rewards"] = torch.zeros(base + (1,), device=self.ppo_device)
        buf["time_outs"] = torch.zeros(base, device=self.ppo_device)
        buf["next_dones"] = torch.zeros(base, device=self.ppo_device)
        buf["agent_mask"] = torch.ones(base, device=self.ppo_device)  # rows to learn from: active, not faulted
        buf["faulted"] = torch.zeros(base, device=self.ppo_device)
        self.tensor_list = self.tensor_list + ["amp_obs", "agent_mask"]
        self.episode_stats = EpisodeStats(rows, self.ppo_device)

    # ---------------------------------------------------------------- rollout
    def play_steps(self):
        # Small per-environment tensors step fastest on one torch thread; the learning that follows gets more.
        if self.rollout_threads:
            torch.set_num_threads(self.rollout_threads)
        try:
            return self._play_steps()
        finally:
            if self.learn_threads:
                torch.set_num_threads(self.learn_threads)

    def _play_steps(self):
        buf = self.experience_buffer
        step_time = 0.0
        for n in range(self.horizon_length):
            self.stop_request.check()
            res = self.get_action_values(self.obs)
            buf.update_data("obses", n, self.obs["obs"])
            if self.has_central_value:
                buf.update_data("states", n, self.obs["states"])
            buf.update_data("dones", n, self.dones)
            for key in self.update_list:
                buf.update_data(key, n, res[key])
            start = time.perf_counter()
            self.obs, task_rewards, self.dones, infos = self.env_step(res["actions"])
            step_time += time.perf_counter() - start
            buf.update_data("task_rewards", n, task_rewards)
            buf.update_data("amp_obs", n, infos["amp_obs"])
            buf.update_data("time_outs", n, infos["time_outs"])
            buf.update_data("next_dones", n, self.dones)
            faulted = faulted_rows(infos)
            learn = infos["agent_mask"] & ~faulted
            buf.update_data("faulted", n, faulted)
            buf.update_data("agent_mask", n, learn)
            self.episode_stats.record_step_info(infos, learn)

        tensors = buf.tensor_dict
        style = self.compute_style_rewards(tensors["amp_obs"]) * tensors["agent_mask"]
        tensors["style_rewards"].copy_(style.unsqueeze(-1))
        rewards = (self.task_reward_weight * tensors["task_rewards"]
                   + self.style_reward_weight * tensors["style_rewards"])
        if self.value_bootstrap:
            rewards = rewards + self.gamma * tensors["values"] * tensors["time_outs"].unsqueeze(-1)
        rewards = rewards * tensors["agent_mask"].unsqueeze(-1)
        tensors["rewards"].copy_(torch.where(tensors["faulted"].unsqueeze(-1) > 0, tensors["values"], rewards))
        self.episode_stats.record_rollout(tensors["task_rewards"], tensors["style_rewards"], tensors["next_dones"],
                                          tensors["agent_mask"])

        last_values = self.get_values(self.obs)
        advantages = self.discount_values(
            self.dones.float(), last_values, tensors["dones"].float(), tensors["values"], tensors["rewards"]
        )
        batch_dict = buf.get_transformed_list(swap_and_flatten01, self.tensor_list)
        batch_dict["returns"] = swap_and_flatten01(advantages + tensors["values"])
        batch_dict["played_frames"] = self.batch_size
        batch_dict["step_time"] = step_time
        return batch_dict

    @torch.no_grad()
    def compute_style_rewards(self, amp_obs: torch.Tensor) -> torch.Tensor:
        """Style reward for AMP features of any leading shape [..., F] -> [...]."""
        flat = amp_obs.reshape(-1, amp_obs.shape[-1])
        rewards = torch.cat([style_reward(self.model.disc_logits(chunk)) for chunk in flat.split(STYLE_REWARD_CHUNK)])
        return rewards.reshape(amp_obs.shape[:-1])

    def _first_agent_index(self, size: int) -> torch.Tensor:
        """For each row of a flattened batch (row-major: row * horizon + step), the index of the same step of its
        team's first agent (rows are env * agents + slot)."""
        agents = self.vec_env.env.num_agents
        i = torch.arange(size, device=self.ppo_device)
        row, step = i // self.horizon_length, i % self.horizon_length
        return (row - row % agents) * self.horizon_length + step

    # ---------------------------------------------------------------- training
    def train_epoch(self):
        start = time.perf_counter()
        self.demo_buffer.store(self._fetch_demo(self.amp_batch_size))
        self.disc_stats = defaultdict(list)
        self._disc_minibatches_seen = 0
        buffers_time = time.perf_counter() - start
        result = list(super().train_epoch())
        start = time.perf_counter()
        tensors = self.experience_buffer.tensor_dict
        self.replay_buffer.store(tensors["amp_obs"][tensors["agent_mask"] > 0])  # active rows only
        buffers_time += time.perf_counter() - start
        result[2] += buffers_time  # update time: the AMP buffers are part of learning
        result[3] += buffers_time  # epoch time
        return tuple(result)

    def train_central_value(self):
        """rl-games' central value training (MAPPO), keeping its mean loss for the epoch's metrics."""
        self._central_value_loss = super().train_central_value()
        return self._central_value_loss

    def prepare_dataset(self, batch_dict):
        """rl-games' dataset, with inactive team slots left out: their loss weights are 0 (rl-games' rnn_masks, as
        weights with mean 1, so a masked loss is the mean over active rows), their values and returns are copied
        from their team's first agent before rl-games' value normaliser sees them, and the advantages are
        normalised over the active rows. With every row active this is rl-games' own computation."""
        mask = batch_dict["agent_mask"]
        active = mask > 0
        weights = mask * (mask.numel() / mask.sum())
        batch_dict["rnn_masks"] = weights
        first = self._first_agent_index(mask.numel())
        for key in ("values", "returns"):
            batch_dict[key] = torch.where(active[:, None], batch_dict[key], batch_dict[key][first])
        normalize, self.normalize_advantage = self.normalize_advantage, False
        super().prepare_dataset(batch_dict)
        self.normalize_advantage = normalize
        if normalize:
            adv = self.dataset.values_dict["advantages"]
            mean = (adv * weights).mean()
            std = ((adv - mean).square() * active).sum().div(active.sum() - 1).sqrt()
            self.dataset.values_dict["advantages"] = torch.where(active, (adv - mean) / (std + 1e-8), 0.0)
        policy = batch_dict["amp_obs"]
        if len(self.replay_buffer):
            replay = self.replay_buffer.sample(policy.shape[0])
        else:  # before the first store: the rollout itself, its active rows (its first agents' for the others)
            replay = torch.where(active[:, None], policy, policy[first])
        self.dataset.values_dict["amp_obs"] = policy
        self.dataset.values_dict["amp_mask"] = mask
        self.dataset.values_dict["amp_obs_replay"] = replay
        self.dataset.values_dict["amp_obs_demo"] = self.demo_buffer.sample(policy.shape[0])

    def _discriminator_terms(self, input_dict) -> dict[str, torch.Tensor]:
        n = self.amp_minibatch_size
        policy = torch.cat((input_dict["amp_obs"][:n], input_dict["amp_obs_replay"][:n]))
        demo = input_dict["amp_obs_demo"][:n]
        # Inactive rows' samples count nowhere (the replay half holds active rows' samples only).
        mask = torch.cat((input_dict["amp_mask"][:n] > 0, torch.ones(n, dtype=torch.bool, device=policy.device)))
        if self._disc_minibatches_seen < self.num_minibatches:  # first mini-epoch: every sample updates the stats
            self.model.amp_mean_std.update(torch.cat((policy[mask], demo)))
        self._disc_minibatches_seen += 1
        demo_in = self.model.normalize_amp_obs(demo).requires_grad_(True)
        disc = self.model.disc
        return discriminator_loss(disc(demo_in), disc(self.model.normalize_amp_obs(policy)), demo_in, disc,
                                  self.disc_loss_cfg, policy_mask=mask)

    def calc_gradients(self, input_dict):
        batch_dict = {
            "is_train": True,
            "prev_actions": input_dict["actions"],
            "obs": self._preproc_obs(input_dict["obs"]),
        }
        res = self.model(batch_dict)
        weights = input_dict["rnn_masks"]
        loss, a_loss, c_loss, entropy, b_loss, _ = self.calc_losses(
            self.actor_loss_func, input_dict["old_logp_actions"], res["prev_neglogp"], input_dict["advantages"],
            self.e_clip, input_dict["old_values"], res["values"], input_dict["returns"], res["mus"],
            res["entropy"], weights,
        )
        disc = self._discriminator_terms(input_dict)
        loss = loss + self.disc_coef * disc["loss"]
        for param in self.model.parameters():
            param.grad = None
        self.scaler.scale(loss).backward()
        self.trancate_gradients_and_step()

        with torch.no_grad():
            kl = gaussian_kl(res["mus"], res["sigmas"], input_dict["mu"], input_dict["sigma"], weights)
        for key, value in disc.items():
            self.disc_stats["disc_loss" if key == "loss" else key].append(value.detach())
        self.aux_loss_dict = {}
        self.train_result = (a_loss, c_loss, entropy, kl, self.last_lr, 1.0, res["mus"].detach(),
                             res["sigmas"].detach(), b_loss)

    def train(self):
        """Epoch loop: train_epoch, log, checkpoint; returns the last epoch's metrics."""
        self.init_tensors()
        self.obs = self.env_reset()
        self.curr_frames = self.batch_size_envs
        metrics = {}
        while self.max_epochs == -1 or self.epoch_num < self.max_epochs:
            epoch = self.update_epoch()
            (step_time, play_time, update_time, epoch_time, a_losses, c_losses, b_losses, entropies, kls,
             last_lr, lr_mul) = self.train_epoch()
            self.dataset.update_values_dict(None)
            self.dist.sync_normalizers(self.model, self.central_value_net if self.has_central_value else None)
            self.frame += self.curr_frames * self.dist.world_size
            metrics = self._epoch_metrics(epoch, step_time, play_time, update_time, epoch_time, a_losses, c_losses,
                                          b_losses, entropies, kls)
            if self.dist.enabled:
                central = list(self.central_value_net.parameters()) if self.has_central_value else []
                metrics["dist/weight_spread"] = self.dist.weight_spread([*self.model.parameters(), *central])
            stop = False
            if self.on_epoch_end is not None:  # the session adds evaluation and curriculum metrics
                stop = bool(self.on_epoch_end(self, metrics))
            self._log(metrics)
            save_after_epoch(self, epoch)
            if stop or (self.max_frames != -1 and self.frame >= self.max_frames):
                break
        self.save_last()
        if self.writer is not None:
            self.writer.close()
        return metrics

    def _epoch_metrics(self, epoch, step_time, play_time, update_time, epoch_time, a_losses, c_losses, b_losses,
                       entropies, kls) -> dict[str, float]:
        frames = self.curr_frames * self.dist.world_size  # all ranks' (each steps as many)
        metrics = {
            "epoch": epoch,
            "frames": self.frame,
            "frames_epoch": frames,
            "fps_env": frames / max(step_time, 1e-9),
            "fps_total": frames / max(epoch_time, 1e-9),
            "time_env": step_time,
            "time_rollout": play_time,
            "time_update": update_time,
            "losses/actor": torch_ext.mean_list(a_losses).item(),
            "losses/critic": torch_ext.mean_list(c_losses).item(),
            "losses/entropy": torch_ext.mean_list(entropies).item(),
            "info/kl": torch_ext.mean_list(kls).item(),
            "info/lr": self.last_lr,
        }
        if b_losses:
            metrics["losses/bounds"] = torch_ext.mean_list(b_losses).item()
        if self.has_central_value:  # the model's own value head is not trained: its loss is the central network's
            metrics["losses/critic"] = float(self._central_value_loss)
        metrics.update({f"amp/{k}": torch.stack(v).mean().item() for k, v in self.disc_stats.items()})
        metrics.update(self.episode_stats.summary())
        metrics.update(training_episode_metrics(self.vec_env.episode_summary()))
        return metrics

    def _log(self, metrics: dict[str, float]) -> None:
        if self.writer is None:
            return
        for key, value in metrics.items():
            if key not in ("epoch", "frames"):
                self.writer.add_scalar(key if "/" in key else f"performance/{key}", value, self.frame)
        self.writer.flush()

    # ---------------------------------------------------------------- checkpoints
    def get_full_state_weights(self):
        state = super().get_full_state_weights()
        state["coohoi"] = dict(self.metadata, num_amp_obs=self.num_amp_obs, algo="ppo")
        if self.session is not None:
            state["session"] = self.session.state_dict()
        return state

    def save(self, fn, resume: bool = False, **metadata):
        """Write the training state atomically (with resume=True also the random streams and the AMP buffers:
        nn/last.pth); metadata joins the checkpoint's "coohoi" metadata."""
        state = self.get_full_state_weights()
        state["coohoi"].update(metadata)
        if resume:
            state["resume"] = resume_state({"demo": self.demo_buffer, "replay": self.replay_buffer},
                                           self.checkpoint_buffer_bytes, sampled=("replay",))
        return save_atomic(state, fn)

    def save_last(self):
        return save_last(self)

    def restore(self, fn, set_epoch=True):
        """Load a checkpoint. set_epoch=True resumes (optimizer and learning rate, epoch and frame counters,
        normalisers, discriminator, the env's random streams, and from nn/last.pth the global random streams and
        the AMP buffers); False only takes the weights and normalisers (fine-tuning)."""
        state = load_checkpoint(fn, map_location=self.ppo_device)
        check_model_fits(fn, state, self.model, self.metadata.get("task"))
        if set_epoch:
            if "optimizer" not in state:
                raise ValueError(f"checkpoint {fn!r} has no optimizer state, so it cannot resume training")
            self.set_full_state_weights(state, set_epoch=True)
            self.last_lr = self.optimizer.param_groups[0]["lr"]  # an adaptive schedule continues where it was
            if self.session is not None and "session" in state:
                self.session.load_state_dict(state["session"])
            restore_resume_state(fn, state.get("resume"), {"demo": self.demo_buffer, "replay": self.replay_buffer})
        else:
            self.set_weights(state)


class EpisodeStats:
    """Per-epoch returns and reward terms accumulated on device (no host sync per step); summary() syncs once.
    Episode lengths and task metrics of ended episodes (success rate, ...) come from the env's own summary."""

    def __init__(self, rows: int, device):
        self.device = device
        self.task_return = torch.zeros(rows, device=device)
        self.style_return = torch.zeros(rows, device=device)
        self.reset_epoch()

    def reset_epoch(self):
        zero = lambda: torch.zeros((), device=self.device)  # noqa: E731
        self.sums = defaultdict(zero)
        self.reward_term_sums = defaultdict(zero)
        self.steps = 0

    def record_step_info(self, infos: dict, active: torch.Tensor) -> None:
        """A step's reward terms, averaged over the active rows (active [rows] bool)."""
        count = active.sum().clamp_min(1)
        for key, value in infos.get("reward_terms", {}).items():
            self.reward_term_sums[key] += (value.float() * active).sum() / count
        self.steps += 1

    def record_rollout(self, task_rewards, style_rewards, ended, active) -> None:
        """Per-step rewards [T, rows, 1], episode-end flags and rows to count [T, rows] of the rollout (an episode
        that ends in a row not counted, such as a faulted world's, is dropped)."""
        for t in range(ended.shape[0]):
            self.task_return += task_rewards[t, :, 0]
            self.style_return += style_rewards[t, :, 0]
            done = ended[t] * active[t]
            self.sums["episodes"] += done.sum()
            self.sums["task_return"] += (self.task_return * done).sum()
            self.sums["style_return"] += (self.style_return * done).sum()
            keep = 1.0 - ended[t]
            self.task_return *= keep
            self.style_return *= keep
        count = active.sum().clamp_min(1)
        self.sums["task_reward"] += task_rewards[..., 0].mul(active).sum() / count
        self.sums["style_reward"] += style_rewards[..., 0].mul(active).sum() / count
        self.sums["rollouts"] += 1

    def summary(self) -> dict[str, float]:
        sums = {k: v.item() for k, v in self.sums.items()}
        rollouts = max(sums.get("rollouts", 0.0), 1.0)
        out = {
            "rewards/task_per_step": sums.get("task_reward", 0.0) / rollouts,
            "rewards/style_per_step": sums.get("style_reward", 0.0) / rollouts,
            "episodes/ended": sums.get("episodes", 0.0),
        }
        episodes = sums.get("episodes", 0.0)
        if episodes > 0:
            out["episodes/task_return"] = sums["task_return"] / episodes
            out["episodes/style_return"] = sums["style_return"] / episodes
        steps = max(self.steps, 1)
        out.update({f"reward_terms/{k}": v.item() / steps for k, v in self.reward_term_sums.items()})
        self.reset_epoch()
        return out
