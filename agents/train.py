"""`coohoi train`: both learners, the training session around them, and the run folder they write.

    coohoi train                                     # the defaults: AMP locomotion, PPO, 400 epochs on the CPU
    coohoi train task=carry_box engine.num_envs=128 seed=1 train.max_minutes=60 experiment=box
    coohoi train task=amp_locomotion train=td3       # the off-policy learner
    coohoi train task=carry_box checkpoint=runs/x/nn/last.pth resume=true    # continue a run
    coohoi train task=carry_box checkpoint=runs/x/nn/last.pth               # start from its weights only

A run writes runs/<experiment>/: config.yaml (the resolved config), nn/last.pth (checkpoint, written atomically
every train.save_frequency epochs, at the end and on Ctrl-C), nn/epoch_<N>.pth snapshots every
train.snapshot_frequency epochs (the newest train.keep_last kept), nn/best.pth (the best periodic evaluation: its
success rate where the task has one, else its episode length; metadata["coohoi"]["best"] names metric and epoch),
summaries/ (tensorboard), metrics.jsonl (one line of metrics per epoch, the first line the matched baselines) and,
with wandb.enabled=true, a wandb run (offline by default). A folder holds one run: a new run into a folder that
already holds one stops before writing anything; resume=true appends to the checkpoint's own folder (config.yaml
kept, metrics.jsonl continued from the checkpoint's epoch). Ctrl-C saves nn/last.pth at the last completed epoch
and exits with code 130; a second Ctrl-C stops at once.

Both learners (train.algo: ppo on rl-games, td3 in coohoi.agents.offpolicy) share a TrainingSession: the progress
line, metrics.jsonl and wandb, the matched baselines measured before training, a deterministic evaluation every
train.eval.every epochs and at the end, and the assistance curriculum. A learner provides act(obs, deterministic),
noise_std(num_rows), train(), save(path, **metadata), restore(path, set_epoch), epoch_num, frame, nn_dir,
save_frequency, snapshot_frequency, keep_last and last_checkpoint; it calls session.epoch_end(learner, metrics) and
then save_after_epoch(learner, epoch) after every epoch.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shlex
import signal
import threading
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from coohoi.agents.checkpoint import CheckpointError, load_checkpoint, run_provenance
from coohoi.agents.config import TrainConfig, train_config
from coohoi.agents.curriculum import AssistCurriculum
from coohoi.agents.distributed import SINGLE, Distributed, close_distributed, init_distributed
from coohoi.agents.evaluation import baselines, evaluate
from coohoi.config import override_key

# Evaluations re-seed their env with this (plus the run's seed), so that every evaluation and both baselines
# start from the same states.
EVAL_SEED_OFFSET = 1_000_003
# A run folder's files (runs/<experiment>/...) and checkpoint names in its nn/ folder.
CONFIG_FILE, METRICS_FILE = "config.yaml", "metrics.jsonl"
LAST, BEST, SNAPSHOT, SNAPSHOT_GLOB = "last.pth", "best.pth", "epoch_{:06d}.pth", "epoch_*.pth"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C


def save_last(learner) -> str | None:
    """Write the learner's nn/last.pth (atomically, with everything a resume needs) and remember it as its last
    checkpoint (rank 0 only: other ranks of a multi-process run write nothing)."""
    if not learner.dist.is_main:
        return None
    learner.last_checkpoint = learner.save(Path(learner.nn_dir) / LAST, resume=True)
    return learner.last_checkpoint


def save_after_epoch(learner, epoch: int) -> None:
    """Both learners' checkpoints after an epoch: nn/last.pth every save_frequency epochs, and an nn/epoch_<N>.pth
    snapshot every snapshot_frequency epochs, of which only the newest keep_last written stay (0: all)."""
    if not learner.dist.is_main:
        return
    if learner.save_frequency > 0 and epoch % learner.save_frequency == 0:
        save_last(learner)
    if learner.snapshot_frequency > 0 and epoch % learner.snapshot_frequency == 0:
        learner.save(Path(learner.nn_dir) / SNAPSHOT.format(epoch))
        if learner.keep_last > 0:
            snapshots = sorted(Path(learner.nn_dir).glob(SNAPSHOT_GLOB), key=lambda p: p.stat().st_mtime_ns)
            for old in snapshots[:-learner.keep_last]:
                old.unlink(missing_ok=True)


def mu_initializer(init_range: float | None) -> dict:
    """rl-games initializer of the action-mean layer's weights: PyTorch's default (published), or uniform in
    [-init_range, init_range], which starts the policy close to the zero action (PD targets at the joints' mid
    ranges) instead of at random per-state targets."""
    if init_range is None:
        return {"name": "default"}
    return {"name": "random_uniform_initializer", "a": -float(init_range), "b": float(init_range)}


def mu_bias(kind: str, env) -> list[float] | None:
    """Initial bias of the action-mean layer: zero (published: the untrained policy's mean PD targets are the
    offsets of reference §2, with knees and elbows at mid-range) or default_pose (the standing pose's action)."""
    return None if kind == "zero" else env.default_pose_action().tolist()


def derive_amp_minibatch_size(amp_requested: int, ppo_requested: int, ppo_minibatch: int) -> int:
    """The published setup trains the discriminator on 4096 samples (of each kind) per PPO minibatch of 16384.
    When the PPO minibatch is reduced (few environments), the discriminator minibatch shrinks in proportion, so
    discriminator work per environment step stays as published."""
    return max(1, min(int(amp_requested), int(amp_requested) * ppo_minibatch // max(1, int(ppo_requested))))


def derive_minibatch_size(requested: int, batch_size: int) -> int:
    """The published minibatch (16384) needs 4096 envs; with fewer rows we take the largest divisor of the batch
    (num_rows * horizon) not above the request, since rl-games needs minibatches that tile the batch exactly."""
    size = max(1, min(int(requested), batch_size))
    while batch_size % size:
        size -= 1
    return size


def learn_threads(cfg: DictConfig) -> int:
    """Torch threads for the policy and discriminator updates: cfg.learn_threads, 0 meaning every CPU core."""
    threads = int(cfg.get("learn_threads", 0) or 0)
    return threads if threads > 0 else (os.cpu_count() or 1)


def rollout_threads(cfg: DictConfig) -> int:
    """Torch threads while stepping environments: cfg.torch_threads (cfg/config.yaml), 0 leaving torch's default."""
    return int(cfg.get("torch_threads") or 0)


def set_torch_threads(cfg: DictConfig) -> None:
    threads = rollout_threads(cfg)
    if threads > 0:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with n torch threads (0: leave as is)."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_rlgames_params(cfg: DictConfig, vec_env, *, max_epochs: int | None = None,
                         network: dict | None = None) -> dict:
    """The rl-games params dict (algo, model, network, config) for the AMP agent on this env. `network` overrides
    the network sizes (mlp_units, disc_units, activation), e.g. with those a checkpoint was trained with."""
    from coohoi.agents.adapter import RLGAMES_ENV_NAME

    env = vec_env.env
    t = train_config(cfg.train)
    p, amp = t.ppo, t.amp
    net = {"mlp_units": t.network.mlp_units, "disc_units": t.network.disc_units, "activation": t.network.activation}
    net.update({k: v for k, v in (network or {}).items() if k in net})
    device = torch.device(env.device)
    num_rows = env.num_rows
    minibatch = derive_minibatch_size(p.minibatch_size, num_rows * p.horizon_length)
    amp_settings = dict(amp.__dict__)
    amp_settings["minibatch_size"] = derive_amp_minibatch_size(amp.minibatch_size, p.minibatch_size, minibatch)
    network_params = {
        "name": "coohoi_amp",
        "separate": True,
        "space": {
            "continuous": {
                "mu_activation": "None",
                "sigma_activation": "None",
                "mu_init": mu_initializer(p.mu_init_range),
                "mu_bias": mu_bias(p.mu_init_bias, env),
                "sigma_init": {"name": "const_initializer", "val": float(p.sigma_init)},
                "fixed_sigma": True,
                "learn_sigma": bool(p.learn_sigma),
            }
        },
        "mlp": {"units": list(net["mlp_units"]), "activation": net["activation"], "d2rl": False,
                "initializer": {"name": "default"}},
        "disc": {"units": list(net["disc_units"]), "activation": net["activation"], "input_size": env.num_amp_obs},
    }
    config = {
        "name": str(cfg.experiment),
        "full_experiment_name": str(cfg.experiment),
        "train_dir": str(cfg.output_dir),
        "env_name": RLGAMES_ENV_NAME,
        "env_info": vec_env.get_env_info(),
        "vec_env": vec_env,
        "num_actors": num_rows,
        "device": str(device),
        "ppo": True,
        "mixed_precision": False,
        "normalize_input": p.normalize_input,
        "normalize_value": p.normalize_value,
        "normalize_advantage": p.normalize_advantage,
        "value_bootstrap": True,
        "reward_shaper": {"scale_value": 1.0},
        "gamma": p.gamma,
        "tau": p.tau,
        "learning_rate": p.learning_rate,
        "lr_schedule": p.lr_schedule,
        "kl_threshold": p.kl_threshold,
        "schedule_type": "standard",  # one KL read per mini-epoch, not per minibatch
        "e_clip": p.e_clip,
        "clip_value": p.clip_value,
        "critic_coef": p.critic_coef,
        "bounds_loss_coef": p.bounds_loss_coef,
        "entropy_coef": p.entropy_coef,
        "grad_norm": p.grad_norm,
        "truncate_grads": True,
        "horizon_length": p.horizon_length,
        "minibatch_size": minibatch,
        "mini_epochs": p.mini_epochs,
        "max_epochs": int(max_epochs if max_epochs is not None else t.max_epochs),
        "save_frequency": t.save_frequency,
        "snapshot_frequency": t.snapshot_frequency,
        "keep_last": t.keep_last,
        "checkpoint_buffer_mib": t.checkpoint_buffer_mib,
        "print_stats": False,
        # torch.compile has no benefit on CPU and a long warm-up; on CUDA it is opt-in.
        "torch_compile": p.torch_compile and device.type == "cuda",
        "task_reward_weight": t.task_reward_weight,
        "style_reward_weight": t.style_reward_weight,
        "amp": amp_settings,
        "rollout_threads": rollout_threads(cfg),
        "learn_threads": learn_threads(cfg),
        "metadata": {"task": str(cfg.task.name), "num_obs": env.num_obs, "num_actions": env.num_actions,
                     "critic": p.critic, **net, **run_provenance(cfg), "env": env.policy_metadata()},
    }
    if p.critic == "central":  # rl-games' central value network on the env's critic group (MAPPO)
        config["use_experimental_cv"] = False  # the actor-critic model's own value head is then not trained
        config["central_value_config"] = {
            "minibatch_size": minibatch, "mini_epochs": p.mini_epochs, "learning_rate": p.learning_rate,
            "lr_schedule": None, "clip_value": p.clip_value, "normalize_input": p.normalize_input,
            "truncate_grads": True, "grad_norm": p.grad_norm, "e_clip": p.e_clip,
            "network": {"name": "actor_critic", "central_value": True,
                        "mlp": {"units": list(net["mlp_units"]), "activation": net["activation"], "d2rl": False,
                                "initializer": {"name": "default"}}},
        }
    return {
        "seed": int(cfg.seed),
        "torch_threads": rollout_threads(cfg),
        "algo": {"name": "coohoi_amp"},
        "model": {"name": "coohoi_amp"},
        "network": network_params,
        "config": config,
    }


def make_agent(cfg: DictConfig, env=None, *, max_epochs: int | None = None, on_epoch_end=None,
               dist: Distributed = SINGLE):
    """Build the env (unless given) and the learner that cfg.train.algo names, as one rank of `dist`. Returns
    (learner, runner), runner being rl-games' for PPO and None otherwise. on_epoch_end(learner, metrics) runs after
    every epoch."""
    t = train_config(cfg.train)
    set_torch_threads(cfg)
    seed_everything(int(cfg.seed))  # rl-games' runner skips seeding when the seed is 0
    if env is None:
        from coohoi.envs import make_env

        env = make_env(cfg)
    if t.algo == "td3":
        from coohoi.agents.offpolicy import OffPolicyAMP

        team_sizes = getattr(getattr(env, "cfg", None), "team_size_range", None)
        if team_sizes is not None and team_sizes[0] < env.num_agents:
            raise ValueError(f"train=td3 learns from every row and does not mask inactive team slots: use "
                             f"task.env.team_size_range=[{env.num_agents},{env.num_agents}] (scene.num_humanoids "
                             f"{env.num_agents}) or the PPO learner")
        if t.init_from:  # its network sizes must be train.td3's (the restore names any difference)
            init_from_layout(t.init_from, env)
        learner = OffPolicyAMP(cfg, t, env, max_epochs=max_epochs, on_epoch_end=on_epoch_end, dist=dist)
        if t.init_from:
            learner.restore(t.init_from, set_epoch=False)
            print(f"initialised from the phase-1 checkpoint {t.init_from}", flush=True)
        return learner, None
    from coohoi.agents.rlgames import AMP_NAME, make_runner

    central = t.ppo.critic == "central"
    from coohoi.agents.adapter import RlGamesVecEnv, register_rlgames_env  # rl-games loads only to train

    vec_env = RlGamesVecEnv(env, central_value=central)
    register_rlgames_env(lambda: env, central_value=central)
    phase1 = init_from_layout(t.init_from, env) if t.init_from else None
    params = build_rlgames_params(cfg, vec_env, max_epochs=max_epochs, network=phase1)
    params["config"]["on_epoch_end"] = on_epoch_end
    if not dist.is_main:  # rl-games makes its folders and a tensorboard writer: not in rank 0's run folder
        import tempfile

        params["config"]["train_dir"] = tempfile.mkdtemp(prefix=f"coohoi-rank{dist.rank}-")
    runner = make_runner()
    # rl-games prints debug lines here (seed, experiment name, seq_length, device, mlp sizes, normaliser shapes):
    # the console keeps our own progress lines; warnings (stderr) still show.
    with contextlib.redirect_stdout(io.StringIO()):
        runner.load_config(params)  # seeds torch/numpy/random, sets threads, builds the reward shaper (no deepcopy)
        agent = runner.algo_factory.create(AMP_NAME, base_name="run", params=runner.params)
    if t.init_from:  # the central value network (MAPPO) is not part of the model: it starts fresh
        agent.restore(t.init_from, set_epoch=False)
        print(f"initialised from the phase-1 checkpoint {t.init_from} (actor, "
              f"{'critic, ' if not central else ''}discriminator and normalisers)", flush=True)
    agent.use_distributed(dist)
    return agent, runner


def init_from_layout(path: str, env) -> dict:
    """The network sizes of a phase-1 checkpoint, after checking that its observation, action and AMP layout is the
    env's (a mismatch raises CheckpointError naming both layouts)."""
    state = load_checkpoint(path, map_location="cpu")
    meta = state.get("coohoi", {})
    theirs = {k: meta.get(k) for k in ("num_obs", "num_actions", "num_amp_obs")}
    ours = {"num_obs": env.num_obs, "num_actions": env.num_actions, "num_amp_obs": env.num_amp_obs}
    if theirs != ours:
        raise CheckpointError(f"train.init_from: checkpoint {path!r} (task {meta.get('task')!r}) has the layout "
                              f"{theirs}; this task ({type(env).__name__}) has {ours}")
    return {k: meta[k] for k in ("mlp_units", "disc_units", "activation") if k in meta}


def format_progress(metrics: dict[str, float], max_epochs: int) -> str:
    def get(key, fmt, scale=1.0):
        value = metrics.get(key)
        return "-" if value is None or not math.isfinite(value) else format(value * scale, fmt)

    total = f"/{max_epochs}" if max_epochs > 0 else ""
    line = (
        f"epoch {metrics['epoch']}{total} | env {get('fps_env', '.0f')} steps/s | total {get('fps_total', '.0f')}"
        f" steps/s | task {get('rewards/task_per_step', '.3f')} | style {get('rewards/style_per_step', '.3f')}"
        f" | ep len {get('episodes/length', '.1f')} | success {get('episodes/success_rate', '.1f', 100.0)}%"
        f" | disc acc {get('amp/demo_accuracy', '.2f')}/{get('amp/policy_accuracy', '.2f')}"
        f" | faults {sum(v for k, v in metrics.items() if k.startswith('faults/')):.0f}"
        f" | frames {metrics['frames']}"
    )
    if "assist/level" in metrics and metrics["assist/level"] > 0:
        line += f" | assist {metrics['assist/level']:.2f}"
    if "eval/episode_length" in metrics:
        line += (f" | eval len {get('eval/episode_length', '.1f')} (zero {get('baseline/zero/episode_length', '.1f')})"
                 f" full {get('eval/full_episode_rate', '.0f', 100.0)}%")
    return line


def _flatten_baselines(measured: dict[str, dict[str, float]]) -> dict[str, float]:
    return {f"baseline/{name}/{key}": value for name, values in measured.items() for key, value in values.items()}


class TrainingSession:
    """What a run does around its learner: matched baselines before training, a deterministic evaluation every
    train.eval.every epochs and at the end (on a separate env with the task's settings, no assistance), the
    assistance curriculum, nn/best.pth, and the progress line, metrics.jsonl and wandb. resume_epoch (a resumed
    run's epoch) continues metrics.jsonl after that epoch's line; otherwise the file starts afresh."""

    def __init__(self, cfg: DictConfig, t: TrainConfig, env, run_dir: Path | None, resume_epoch: int | None = None):
        self.cfg, self.t, self.env, self.run_dir = cfg, t, env, run_dir
        self.max_epochs = t.max_epochs
        self.started = time.perf_counter()
        self.curriculum = AssistCurriculum(t.assist, env.max_episode_length)
        env.set_assist(t.assist)
        self._eval_env = None
        self.baselines: dict[str, float] = {}
        self.last_eval: dict[str, float] = {}
        self.best: dict | None = None  # the best evaluation so far: metric, value, episode_length, epoch
        self.recorded: tuple[int, int] | None = None  # (epoch, frames) of the last epoch in metrics.jsonl
        self.metrics_file = None
        if run_dir:
            if resume_epoch is not None:
                _drop_metrics_after(run_dir / METRICS_FILE, resume_epoch)
            self.metrics_file = (run_dir / METRICS_FILE).open("a" if resume_epoch is not None else "w",
                                                              encoding="utf-8")
        self.wandb_run = None
        wandb_cfg = cfg.get("wandb") or {}
        if run_dir and wandb_cfg.get("enabled", False):
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb

            self.wandb_run = wandb.init(
                project=wandb_cfg.get("project", "coohoi"), name=str(cfg.experiment), dir=str(run_dir),
                mode=wandb_cfg.get("mode", "offline"), config=OmegaConf.to_container(cfg, resolve=True),
                resume="allow")

    @property
    def eval_env(self):
        if self._eval_env is None:
            from coohoi.envs import make_env

            eval_cfg = OmegaConf.merge(self.cfg, {"engine": {"num_envs": self.t.eval.num_envs}})
            self._eval_env = make_env(eval_cfg, motion_lib=self.env.motion_lib)
        return self._eval_env

    def _eval_seeded(self, run):
        env = self.eval_env
        env.seed(int(self.cfg.seed) + EVAL_SEED_OFFSET)
        with torch_threads(rollout_threads(self.cfg)):
            return run(env)

    def start(self, learner) -> None:
        """Measure the matched baselines (zero action, and zero action plus the learner's noise) and print them;
        the run's clock (train.max_minutes, time/elapsed_s) starts after them."""
        self.started = time.perf_counter()
        if not self.t.eval.baselines:
            return
        generator = torch.Generator(device=self.env.device).manual_seed(int(self.cfg.seed))
        measured = self._eval_seeded(lambda env: baselines(env, learner.noise_std(env.num_rows), generator))
        self.baselines = _flatten_baselines(measured)
        z, zn = measured["zero"], measured["zero_noise"]
        print(f"baselines over {int(z['num_episodes'])} episodes: zero action {z['episode_length']:.1f} steps "
              f"(deterministic, compare with eval); zero action + the learner's action noise "
              f"{zn['episode_length']:.1f} steps (compare with training's ep len)", flush=True)
        self._write({"baselines": measured})
        self.started = time.perf_counter()

    def evaluate(self, learner) -> dict[str, float]:
        """The learner's deterministic policy under the evaluation protocol (agents.evaluation)."""
        self.last_eval = self._eval_seeded(lambda env: evaluate(env, lambda obs: learner.act(obs, True)))
        return self.last_eval

    def epoch_end(self, learner, metrics: dict[str, float]) -> bool:
        """Add the curriculum level, the baselines and (every train.eval.every epochs, and at the last) an evaluation
        to this epoch's metrics (in place, before the learner logs them), then print and record them. Returns True
        when the run should stop after this epoch (train.max_minutes)."""
        epoch = int(metrics["epoch"])
        elapsed = time.perf_counter() - self.started
        out_of_time = self.t.max_minutes is not None and elapsed >= 60.0 * self.t.max_minutes
        metrics["time/elapsed_s"] = elapsed
        level = self.curriculum.update(epoch, int(metrics["frames"]), metrics.get("episodes/length"))
        self.env.set_assist_level(level)
        if self.t.assist.enabled:
            metrics["assist/level"] = level
        metrics.update(self.baselines)
        every = self.t.eval.every
        if every and (epoch % every == 0 or epoch == self.max_epochs or out_of_time):
            metrics.update({f"eval/{k}": v for k, v in self.evaluate(learner).items()})
            self._keep_best(learner, epoch)
        print(format_progress(metrics, self.max_epochs), flush=True)
        self._write(metrics)
        self.recorded = (epoch, int(metrics["frames"]))
        if self.wandb_run is not None:
            self.wandb_run.log(metrics, step=int(metrics["frames"]))
        if out_of_time:
            print(f"stopping: train.max_minutes={self.t.max_minutes:g} reached", flush=True)
        return out_of_time

    def _keep_best(self, learner, epoch: int) -> None:
        """Write nn/best.pth when this evaluation beats the best so far: by success rate where the task has one
        (ties by episode length), else by episode length."""
        e = self.last_eval
        metric = "success_rate" if "success_rate" in e else "episode_length"
        if self.run_dir is None or not math.isfinite(e[metric]):
            return
        score = (e[metric], e["episode_length"])
        if self.best is not None and score <= (self.best["value"], self.best["episode_length"]):
            return
        self.best = {"metric": metric, "value": float(e[metric]), "episode_length": float(e["episode_length"]),
                     "epoch": epoch}
        learner.save(Path(learner.nn_dir) / BEST, best=dict(self.best))

    def summary_line(self) -> str:
        """The trained policy's deterministic evaluation next to the zero action's (and the success rate)."""
        e = self.last_eval
        if not e:
            return "no evaluation ran (train.eval.every=0)"
        line = (f"trained policy, deterministic: episode length {e['episode_length']:.1f} steps, full episodes "
                f"{100 * e['full_episode_rate']:.0f}%")
        zero = self.baselines.get("baseline/zero/episode_length")
        if zero:
            line += f" | zero action: {zero:.1f} steps ({e['episode_length'] / zero:.2f}x)"
        if "success_rate" in e:
            line += f" | success {100 * e['success_rate']:.1f}%"
        if self.best is not None and self.run_dir is not None:
            line += (f"\nbest: {self.run_dir / 'nn' / BEST} (epoch {self.best['epoch']}, {self.best['metric']} "
                     f"{self.best['value']:.3g})")
        return line

    def _write(self, row: dict) -> None:
        if self.metrics_file is not None:
            self.metrics_file.write(json.dumps(row) + "\n")
            self.metrics_file.flush()

    def state_dict(self) -> dict:
        return {"curriculum": self.curriculum.state_dict(), "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state.get("best")
        if "curriculum" in state:
            self.curriculum.load_state_dict(state["curriculum"])
            self.env.set_assist_level(self.curriculum.level)

    def close(self) -> None:
        if self.metrics_file is not None:
            self.metrics_file.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()


def _epoch_of(line: str) -> float:
    """A metrics.jsonl line's epoch: 0 for the baselines' line, inf for a line cut short by a crash."""
    try:
        return json.loads(line).get("epoch", 0)
    except ValueError:
        return math.inf


def _drop_metrics_after(path: Path, epoch: int) -> None:
    """Keep metrics.jsonl's lines up to a resumed checkpoint's epoch, so that the resumed run's epochs follow on
    (lines of epochs after it, from a run that stopped between saves, are dropped, and the drop is printed)."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _epoch_of(line) <= epoch]
    if len(kept) < len(lines):
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, path)
        print(f"{path}: dropped {len(lines) - len(kept)} lines of epochs after the checkpoint's epoch {epoch}",
              flush=True)


def holds_run(run_dir: Path) -> bool:
    """Whether a run folder holds a run: a checkpoint in nn/, or an epoch's line in metrics.jsonl (its first two
    lines: the baselines, then epoch 1). A start that failed before its first epoch leaves neither."""
    if any((run_dir / "nn").glob("*.pth")):
        return True
    metrics = run_dir / METRICS_FILE
    if not metrics.is_file():
        return False
    with metrics.open(encoding="utf-8") as f:
        return any('"epoch"' in f.readline() for _ in range(2))


def check_run_folder(run_dir: Path, checkpoint: str | None, resume: bool) -> None:
    """Refuse, before anything is written, a new run into a folder that holds a run, and a resume into a folder
    holding another run than the checkpoint's."""
    if not holds_run(run_dir):
        return
    last = run_dir / "nn" / LAST
    if not resume:
        way = (f"continue it with checkpoint={last} resume=true" if last.is_file()
               else "delete the folder (it has no nn/last.pth to resume from)")
        raise ValueError(f"{run_dir} already holds a run: start a new one with experiment=NAME, or {way}")
    own = Path(checkpoint).resolve().parent.parent
    if own != run_dir.resolve():
        raise ValueError(f"resume=true continues the run of {checkpoint} in its own folder, but {run_dir} holds "
                         f"another run: give output_dir={own.parent} experiment={own.name}")


def _print_cpu_adjustments(cfg: DictConfig) -> None:
    """Print, once per run, what train.cpu_overrides changed that this run's learner uses (the other learner's
    section is changed too, but nothing reads it)."""
    other = {"ppo": "td3.", "td3": "ppo."}.get(str(cfg.train.algo), "")
    applied = {k: v for k, v in (cfg.train.get("cpu_applied") or {}).items() if not (other and k.startswith(other))}
    if applied:
        changes = ", ".join(f"{k}={OmegaConf.to_container(v) if OmegaConf.is_config(v) else v}"
                            for k, v in applied.items())
        print(f"CPU engine: using {changes} (train.cpu_overrides; set any of them explicitly to change it)",
              flush=True)


def train(cfg: DictConfig, overrides: list[str] = ()) -> int:
    t = train_config(cfg.train)
    run_dir = Path(cfg.output_dir) / str(cfg.experiment)
    checkpoint = cfg.get("checkpoint")
    resume = bool(cfg.get("resume", False))
    if resume and not checkpoint:
        raise ValueError("resume=true needs checkpoint=PATH (e.g. runs/<experiment>/nn/last.pth)")
    if checkpoint and not Path(checkpoint).is_file():
        raise ValueError(f"checkpoint {checkpoint!r} does not exist")
    if checkpoint and t.init_from:
        raise ValueError("give either checkpoint=PATH (this task's run) or train.init_from=PATH (a phase-1 policy), "
                         "not both")
    check_run_folder(run_dir, checkpoint, resume)
    resume_epoch = int(load_checkpoint(checkpoint, map_location="cpu").get("epoch", 0)) if resume else None
    if resume and t.max_epochs != -1 and resume_epoch >= t.max_epochs:
        print(f"{checkpoint} is finished: epoch {resume_epoch} of train.max_epochs={t.max_epochs}; to train on, "
              f"resume with a larger train.max_epochs (e.g. train.max_epochs={resume_epoch + t.max_epochs})",
              flush=True)
        return 0
    dist = init_distributed(cfg)  # torchrun's ranks (coohoi.agents.distributed); a single process otherwise
    code = _train(cfg, t, run_dir, checkpoint, resume, resume_epoch, dist, overrides)
    if code == 0:  # after a failure or an interrupt the ranks need not agree on a last collective: torchrun ends them
        close_distributed(dist)
    return code


def _train(cfg, t: TrainConfig, run_dir: Path, checkpoint, resume: bool, resume_epoch, dist: Distributed,
           overrides) -> int:
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (resume and (run_dir / CONFIG_FILE).is_file()):  # a resume keeps its run's config.yaml
            OmegaConf.save(cfg, run_dir / CONFIG_FILE, resolve=True)
        _print_cpu_adjustments(cfg)
        if dist.enabled:
            print(f"training on {dist.world_size} processes ({'nccl' if 'cuda' in dist.device else 'gloo'}), "
                  f"{cfg.engine.num_envs} environments each", flush=True)
    session = learner = None
    try:
        from coohoi.envs import make_env

        env = make_env(cfg)
        if dist.is_main:
            session = TrainingSession(cfg, t, env, run_dir, resume_epoch=resume_epoch)
        else:
            env.set_assist(t.assist)
        learner, _ = make_agent(cfg, env=env, on_epoch_end=_epoch_end_for(dist, session, env), dist=dist)
        learner.session = session
        if checkpoint:
            learner.restore(checkpoint, set_epoch=resume)
            if dist.is_main:
                print(f"{'resuming' if resume else 'starting from the weights of'} {checkpoint}"
                      + (f" at epoch {learner.epoch_num}" if resume else ""), flush=True)
            elif resume:  # the checkpoint's random streams are rank 0's: draw this rank's own
                seed = int(cfg.seed) + learner.epoch_num
                seed_everything(seed)
                env.seed(seed)
                if isinstance(getattr(learner, "generator", None), torch.Generator):  # the off-policy learner's
                    learner.generator.manual_seed(seed)
        if session is not None:
            session.recorded = (learner.epoch_num, learner.frame)
            session.start(learner)
        level, = dist.broadcast_values([session.curriculum.level if session is not None else 0.0])
        env.set_assist_level(level)
        with StopRequest() as learner.stop_request:
            learner.train()
        if session is not None:
            print(f"checkpoint: {learner.last_checkpoint}\ntensorboard: {learner.summaries_dir}", flush=True)
            print(session.summary_line(), flush=True)
    except KeyboardInterrupt:
        return _save_interrupted(learner, session, overrides) if dist.is_main else EXIT_INTERRUPTED
    finally:
        if session is not None:
            session.close()
    return 0


def _epoch_end_for(dist: Distributed, session: TrainingSession | None, env):
    """The learners' on_epoch_end: the session's (rank 0), whose stop decision and assistance level every other
    rank then takes."""
    def epoch_end(learner, metrics) -> bool:
        stop = session.epoch_end(learner, metrics) if session is not None else False
        if not dist.enabled:
            return stop
        stop, level = dist.broadcast_values([float(stop), session.curriculum.level if session is not None else 0.0])
        env.set_assist_level(level)
        return bool(stop)

    return epoch_end


class StopRequest:
    """Ctrl-C while training: the first SIGINT is taken at the learner's next environment step (check() raises
    KeyboardInterrupt there), never inside a library's code, where an interrupt can leave a lock held (a writer's
    queue, a file being saved); a second one stops at once. Learners call check() once per step; outside
    `with StopRequest() as stop:` (or off the main thread) SIGINT keeps its usual meaning."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


NO_STOP_REQUEST = StopRequest()  # a learner's own, never requested: learners built outside `coohoi train`


def _save_interrupted(learner, session: TrainingSession | None, overrides) -> int:
    """Ctrl-C: save nn/last.pth with the counters of the last epoch in metrics.jsonl (the interrupted epoch's
    partial updates stay in the weights), print one line, and return 130. A second Ctrl-C while saving stops at
    once (save_atomic leaves the previous nn/last.pth whole)."""
    if session is None or session.recorded is None:
        print("interrupted before training started: nothing saved", flush=True)
        return EXIT_INTERRUPTED
    learner.epoch_num, learner.frame = session.recorded
    try:
        path = save_last(learner)
    except KeyboardInterrupt:
        print(f"interrupted again while saving: {Path(learner.nn_dir) / LAST} is the previous save", flush=True)
        return EXIT_INTERRUPTED
    args = [o for o in overrides if override_key(o) not in ("checkpoint", "resume")]
    print(f"interrupted at epoch {learner.epoch_num}: saved {path}; resume with: coohoi train "
          f"{shlex.join([*args, f'checkpoint={path}', 'resume=true'])}", flush=True)
    return EXIT_INTERRUPTED


__all__ = ["TrainingSession", "build_rlgames_params", "check_run_folder", "derive_minibatch_size", "format_progress",
           "holds_run", "make_agent", "save_after_epoch", "save_last", "train"]
