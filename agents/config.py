"""Typed training configs: one dataclass per part, each default written once, here (reference §5-6 unless a comment
says otherwise). Hydra composes the `train:` section of a run over TrainConfig (registered in hydra's ConfigStore by
coohoi.cli), so an unknown or misspelled key stops at composition with a message naming it; task yamls override
only what their task needs (cfg/task/*.yaml, `train:`).

    TrainConfig
      algo                  ppo (published, rl-games) | td3 (off-policy, coohoi.agents.offpolicy)
      network, amp          shared by both learners: network sizes and the discriminator
      ppo, td3              each learner's own settings
      assist, eval          assistance curriculum and periodic deterministic evaluation, for both learners
      cpu_overrides         settings changed when the engine runs on the CPU (unless set explicitly)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from coohoi.config import (NON_NEGATIVE, OBJECT_KINDS, OPEN_UNIT, POSITIVE, UNIT, ConfigError, at_least, check_finite,
                           check_ranges, one_of)
from coohoi.config import to_dataclass as core_to_dataclass

ALGOS = ("ppo", "td3")
LR_SCHEDULES = ("constant", "adaptive")
MU_INIT_BIASES = ("zero", "default_pose")
ACTIVATIONS = ("relu", "elu", "tanh", "silu")
ASSIST_SCHEDULES = ("linear", "adaptive")


class TrainConfigError(ConfigError):
    """A training setting that cannot work; the message names it (train.<key>)."""


@dataclass
class NetworkConfig:
    mlp_units: list[int] = field(default_factory=lambda: [1024, 512])  # actor and critic (separate networks)
    disc_units: list[int] = field(default_factory=lambda: [1024, 512])  # discriminator
    activation: str = "relu"


@dataclass
class AmpConfig:
    """The discriminator and its buffers (reference §5, Isaac Gym AMP implementations)."""

    batch_size: int = 512  # new demo samples added to the demo buffer per epoch
    # Discriminator samples (of each kind) per PPO minibatch of 16384; a smaller PPO minibatch (few envs) scales it
    # down in proportion, keeping the published discriminator work per environment step.
    minibatch_size: int = 4096
    demo_buffer_size: int = 200000
    replay_buffer_size: int = 200000
    replay_keep_prob: float = 0.01  # once the replay buffer is full, each new policy sample is kept this often
    disc_coef: float = 5.0
    disc_grad_penalty: float = 5.0
    disc_logit_reg: float = 0.01
    disc_weight_decay: float = 1.0e-4
    disc_learning_rate: float | None = None  # None: the policy's (published: one optimizer)


@dataclass
class PPOConfig:
    """PPO as CooHOI trains it (reference §6), on rl-games."""

    horizon_length: int = 32
    # rl-games needs minibatches that tile num_envs * horizon exactly; with fewer than 4096 environments the largest
    # divisor of that batch not above this is used.
    minibatch_size: int = 16384
    mini_epochs: int = 6
    learning_rate: float = 2.0e-5
    lr_schedule: str = "constant"  # constant (published) | adaptive: keep the policy KL near kl_threshold
    kl_threshold: float = 0.008
    gamma: float = 0.99
    tau: float = 0.95  # GAE lambda
    e_clip: float = 0.2
    clip_value: bool = False
    critic_coef: float = 5.0
    bounds_loss_coef: float = 10.0  # rl-games' soft bound is |mu| <= 1.1 (ASE: 1.0)
    entropy_coef: float = 0.0
    grad_norm: float = 1.0
    normalize_input: bool = True
    normalize_value: bool = True
    normalize_advantage: bool = True
    sigma_init: float = -2.9  # log of the action std, exp(-2.9) = 0.055
    learn_sigma: bool = False  # published: fixed; true: a state-independent std trained from sigma_init
    mu_init_range: float | None = None  # None: PyTorch's default init of the action-mean layer
    mu_init_bias: str = "zero"  # zero | default_pose: the untrained mean action holds the standing pose
    torch_compile: bool = False  # CUDA only
    # What the value function sees: local = the agent's own policy observation (CooHOI's released two-agent code);
    # central = the env's critic group (the policy observation plus the team's global state: MAPPO), learnt by
    # rl-games' central value network. Identical for single-agent tasks, whose critic group is the policy's.
    critic: str = "local"


@dataclass
class TD3Config:
    """The off-policy AMP learner (coohoi.agents.offpolicy): TD3 with a clipped double critic, n-step returns and a
    replay buffer filled by every environment, the style reward recomputed by the current discriminator for each
    sampled transition (discriminator actor-critic, Kostrikov et al. 2019). Settings follow FastTD3 (Seo et al.
    2025) where a CPU allows; comments give its values."""

    steps_per_epoch: int = 32  # environment steps between progress lines, logs and checkpoints (PPO's horizon)
    buffer_steps: int = 1024  # transitions kept per environment (FastTD3: 10240 per env at 1024 envs)
    batch_size: int = 4096  # transitions per update (FastTD3: 32768)
    updates_per_step: int = 2  # critic updates per environment step (FastTD3: 2)
    learning_starts: int = 16  # environment steps before the first update
    n_step: int = 3  # n-step returns (FastTD3: 1 or 3)
    gamma: float = 0.99
    tau: float = 0.1  # target network step (FastTD3: 0.1)
    actor_learning_rate: float = 3.0e-4
    critic_learning_rate: float = 3.0e-4
    disc_learning_rate: float = 1.0e-4
    weight_decay: float = 0.1  # AdamW on actor and critic (FastTD3)
    policy_delay: int = 2  # critic updates per actor update
    # Critic updates per discriminator update: 4 gives 0.25 discriminator updates per environment step, near
    # PPO's published ratio (6 mini-epochs per 32-step rollout: 0.19).
    disc_every: int = 4
    target_noise: float = 0.001  # target policy smoothing std (FastTD3: 0.001), clipped to noise_clip
    noise_clip: float = 0.5
    # Exploration: each environment keeps a Gaussian std drawn log-uniformly in [noise_std_min, noise_std_max] and
    # redrawn at its resets (FastTD3 draws uniformly in [0.001, 0.4]); equal values give one fixed std.
    noise_std_min: float = 0.055
    noise_std_max: float = 0.055
    actor_units: list[int] = field(default_factory=lambda: [512, 256])
    critic_units: list[int] = field(default_factory=lambda: [1024, 512])
    layer_norm: bool = True  # in the critic
    actor_init_scale: float = 0.01  # the actor's output layer starts this small (zero action)
    grad_norm: float = 0.0  # 0: no clipping (FastTD3)
    obs_normalization: bool = True


@dataclass
class AssistConfig:
    """Assistance curriculum (Yu, Turk and Liu 2018): virtual forces on the pelvis hold the humanoid up and upright
    early in training and fade as the policy improves. Off in evaluation. The forces are a PD on pelvis height and
    on pelvis tilt (roll and pitch), scaled by the curriculum's current level in [0, 1]."""

    enabled: bool = False
    height: float | None = None  # pelvis height held (m); None: the default pose's
    height_kp: float = 2000.0  # N/m
    height_kd: float = 200.0  # N s/m
    max_force: float = 600.0  # N, upward only (about 1.25 body weights)
    upright_kp: float = 600.0  # N m/rad
    upright_kd: float = 60.0  # N m s/rad
    max_torque: float = 300.0  # N m
    # linear: level falls from 1 to 0 over anneal_frames. adaptive: level drops by `step` each time the training
    # episode length reaches `threshold` of the episode length (at most once every `patience` epochs), and never
    # lies above the linear schedule.
    schedule: str = "adaptive"
    anneal_frames: int = 3_000_000
    threshold: float = 0.5
    step: float = 0.1
    patience: int = 10


@dataclass
class EvalConfig:
    """Matched baselines at the start and a deterministic evaluation every `every` epochs, on a separate env with
    the training task's settings (assistance off). Each environment plays one episode from its start."""

    every: int = 50  # epochs between evaluations (0: none; baselines are still measured)
    num_envs: int = 64
    baselines: bool = True  # zero action (deterministic) and zero action + the learner's action noise


@dataclass
class TrainConfig:
    algo: str = "ppo"
    # The README's main job: 400 epochs of 128 environments x 32 steps (1.6 M frames, minutes on the CPU). PPO's
    # AMP-locomotion policy outlasted the zero action 3 times from 1.2 M frames on (docs/learning_evidence.md).
    max_epochs: int = 400
    max_minutes: float | None = None  # also stop after the epoch that passes this wall-clock budget
    task_reward_weight: float = 0.5
    style_reward_weight: float = 0.5
    # Epochs between writes of nn/last.pth (always written at the end and on Ctrl-C): every epoch, so that a killed
    # run loses at most the epoch in progress.
    save_frequency: int = 1
    # nn/last.pth resumes a run whole: besides weights, optimisers, normalisers and counters it holds the random
    # streams and each buffer of at most this size (MiB); of a larger AMP replay buffer, a uniform sample of this
    # size; a larger demo buffer is drawn again from the motion library, a larger off-policy replay refilled.
    # Measured on the 2-core CPU (carry, CPU defaults, a full 50000-row replay): a save takes 0.005 s without
    # buffers, 0.06 s with a 16 MiB sample (5% of a 1.1 s epoch), 0.15-0.26 s with 64 MiB.
    checkpoint_buffer_mib: float = 16.0
    snapshot_frequency: int = 50  # epochs between nn/epoch_<N>.pth snapshots (0: none); the newest keep_last stay
    keep_last: int = 3  # nn/epoch_<N>.pth snapshots kept, the newest written (0: every one)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    amp: AmpConfig = field(default_factory=AmpConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    td3: TD3Config = field(default_factory=TD3Config)
    assist: AssistConfig = field(default_factory=AssistConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # Applied when the engine runs on the CPU, to every key the command line does not set (coohoi.cli.compose);
    # the run prints what it changed; null applies none. Measured on the 2-core CPU: the published networks make learning cost ~5x the
    # environment stepping (amp_locomotion, 256 envs: 6.7 s vs 1.3 s per epoch), these keep it at or below the
    # stepping; a larger step size shows progress within CPU-sized runs; a 200k buffer of 10 x 125 features takes
    # 1 GB and its demo half runs forward kinematics for every sample.
    cpu_overrides: dict[str, Any] | None = field(default_factory=lambda: {
        "network.mlp_units": [256, 128],
        "network.disc_units": [256, 128],
        "ppo.learning_rate": 1.0e-4,
        "ppo.mu_init_range": 0.01,  # start near the zero action (CPU runs are short)
        "amp.demo_buffer_size": 50000,
        "amp.replay_buffer_size": 50000,
        # The off-policy learner is update-bound on a CPU. Measured over 45 minutes (docs/learning_evidence.md):
        # [256, 256] critics with 512-transition batches run twice the frames per minute but learned no faster
        # per frame and less stably (deterministic episodes 195 steps over the last 15 minutes, against 261).
        "td3.actor_units": [256, 256],
        "td3.critic_units": [512, 256],
        "td3.batch_size": 1024,
        "td3.updates_per_step": 1,
    })
    cpu_applied: dict[str, Any] = field(default_factory=dict)  # set by coohoi: what cpu_overrides changed here
    # A phase-1 checkpoint to start from (fine-tuning, e.g. a team task from the single-agent carry policy): actor,
    # critic (train.ppo.critic=local), discriminator and normalisers take its weights, and its network sizes; a
    # checkpoint whose observation, action or AMP layout differs from the task's is refused, naming both.
    init_from: str | None = None


PLAY_POLICIES = ("checkpoint", "zero")
CRITICS = ("local", "central")


@dataclass
class PlayConfig:
    """`coohoi play`: a policy (checkpoint=PATH: a checkpoint or an exported .onnx), or the zero-action baseline,
    in the interactive viewer or headless."""

    policy: str = "checkpoint"  # checkpoint (needs checkpoint=PATH) | zero: the zero-action baseline
    deterministic: bool = True  # false: act with the PPO policy's action noise, as in training
    headless: bool = False  # true: no window; run `steps` steps and print episode metrics
    steps: int = 600
    env: int = 0  # the environment shown first (the viewer switches with keys)
    speed: float = 1.0  # playback speed, 1 = real time (the viewer's keys halve and double it)
    markers: bool = True  # draw the target, the handles and the standing points (a key toggles them)
    show_ui: bool = False  # the MuJoCo viewer's side panels (Tab and Shift-Tab toggle them)


RENDER_FOLLOW = ("team", "object")


@dataclass
class RenderConfig:
    """`coohoi render`: the same playback headless into a video (MUJOCO_GL=egl or osmesa)."""

    out: str = "policy.mp4"  # .mp4 (or .gif); with several envs, one file each: <stem>_env<i><suffix>
    seconds: float = 10.0  # length of each video
    width: int = 640
    height: int = 480
    envs: list[int] = field(default_factory=lambda: [0])  # which environments to film
    follow: str = "team"  # the camera follows the team's centre, or the object
    overlay: bool = True  # step, reward and success drawn on every frame
    markers: bool = True  # the target (translucent), the handles and the standing points
    policy: str = "checkpoint"  # checkpoint | zero
    deterministic: bool = True


@dataclass
class ExportConfig:
    """`coohoi export`: the actor as ONNX and TorchScript with a metadata JSON, checked for parity."""

    out: str | None = None  # output stem (<out>.onnx, <out>.pt, <out>.json); None: beside the checkpoint
    parity_samples: int = 1024  # random observations compared between onnxruntime and torch
    parity_tolerance: float = 1.0e-5  # largest allowed action difference
    opset: int = 17


@dataclass
class EvalCommandConfig:
    """`coohoi eval`: N episodes with fixed seeds, both published metric sets as JSON, a CSV row per episode."""

    episodes: int = 64  # played engine.num_envs at a time, each from a fresh start
    seed: int = 0  # round r of engine.num_envs episodes resets the env with seed + r
    out: str | None = None  # folder for metrics.json and episodes.csv; None: runs/eval/<task>_<policy file stem>
    policy: str = "checkpoint"  # checkpoint | zero
    deterministic: bool = True
    object_kind: str | None = None  # shorthand for task.scene.object.kind (null: the policy's own)
    team_size: int | None = None  # team tasks: a fixed team size, in a scene of exactly that many humanoids
    progress: bool = True  # a progress bar on stderr


@dataclass
class WandbConfig:
    enabled: bool = False
    mode: str = "offline"  # offline | online | disabled
    project: str = "coohoi"


# The range rules of each config (coohoi.config.check_ranges: space-separated keys, rule). Run at composition by
# coohoi.cli, so that a value that cannot work stops before anything is built.
UNITS = (lambda v: len(v) > 0 and all(u >= 1 for u in v), "a non-empty list of sizes >= 1")
TRAIN_RULES = [
    ("algo", one_of(ALGOS)), ("max_epochs", (lambda v: v >= 1 or v == -1, ">= 1 (or -1: no limit)")),
    ("max_minutes", POSITIVE),
    ("task_reward_weight style_reward_weight save_frequency snapshot_frequency keep_last checkpoint_buffer_mib",
     NON_NEGATIVE),
    ("network.mlp_units network.disc_units td3.actor_units td3.critic_units", UNITS),
    ("network.activation", one_of(ACTIVATIONS)),
    ("amp.batch_size amp.minibatch_size amp.demo_buffer_size amp.replay_buffer_size", at_least(1)),
    ("amp.replay_keep_prob", OPEN_UNIT), ("amp.disc_learning_rate", POSITIVE),
    ("amp.disc_coef amp.disc_grad_penalty amp.disc_logit_reg amp.disc_weight_decay", NON_NEGATIVE),
    ("ppo.lr_schedule", one_of(LR_SCHEDULES)), ("ppo.mu_init_bias", one_of(MU_INIT_BIASES)),
    ("ppo.critic", one_of(CRITICS)), ("ppo.horizon_length ppo.minibatch_size ppo.mini_epochs", at_least(1)),
    ("ppo.learning_rate ppo.kl_threshold ppo.e_clip ppo.grad_norm ppo.mu_init_range", POSITIVE),
    ("ppo.gamma ppo.tau", UNIT), ("ppo.critic_coef ppo.bounds_loss_coef ppo.entropy_coef", NON_NEGATIVE),
    ("td3.steps_per_epoch td3.buffer_steps td3.batch_size td3.updates_per_step td3.n_step td3.policy_delay"
     " td3.disc_every", at_least(1)),
    ("td3.gamma td3.tau", OPEN_UNIT),
    ("td3.actor_learning_rate td3.critic_learning_rate td3.disc_learning_rate", POSITIVE),
    ("td3.learning_starts td3.weight_decay td3.target_noise td3.noise_clip td3.actor_init_scale td3.grad_norm",
     NON_NEGATIVE),
    ("assist.schedule", one_of(ASSIST_SCHEDULES)), ("assist.threshold assist.step", OPEN_UNIT),
    ("assist.height assist.anneal_frames", POSITIVE),
    ("assist.height_kp assist.height_kd assist.max_force assist.upright_kp assist.upright_kd assist.max_torque"
     " assist.patience", NON_NEGATIVE),
    ("eval.every", NON_NEGATIVE), ("eval.num_envs", at_least(1)),
]
WANDB_MODES = ("offline", "online", "disabled")
# The command sections of the composed config: name -> (dataclass, range rules).
COMMAND_SECTIONS = {
    "play": (PlayConfig, [("policy", one_of(PLAY_POLICIES)), ("steps", at_least(1)), ("env", NON_NEGATIVE),
                          ("speed", POSITIVE)]),
    "render": (RenderConfig, [("seconds", POSITIVE), ("width height", at_least(16)),
                              ("envs", (lambda v: len(v) > 0 and min(v) >= 0, "a non-empty list of indices >= 0")),
                              ("follow", one_of(RENDER_FOLLOW)), ("policy", one_of(PLAY_POLICIES))]),
    "export": (ExportConfig, [("parity_samples", at_least(1)), ("parity_tolerance", POSITIVE),
                              ("opset", at_least(13))]),
    "eval": (EvalCommandConfig, [("episodes team_size", at_least(1)), ("policy", one_of(PLAY_POLICIES)),
                                 ("object_kind", one_of(OBJECT_KINDS))]),
    "wandb": (WandbConfig, [("mode", one_of(WANDB_MODES))]),
}


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise TrainConfigError(f"train.{key} {message}")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Refuse settings that cannot work, naming the key."""
    check_finite(cfg, "train", TrainConfigError)
    check_ranges(cfg, "train", TRAIN_RULES, TrainConfigError)
    t = cfg.td3
    _require(t.buffer_steps > t.n_step, "td3.buffer_steps", f"must exceed td3.n_step ({t.n_step})")
    _require(0 < t.noise_std_min <= t.noise_std_max, "td3.noise_std_min",
             f"must be > 0 and <= td3.noise_std_max, got {t.noise_std_min}, {t.noise_std_max}")
    for key in cfg.cpu_overrides or {}:
        try:
            attrgetter(key)(cfg)
        except AttributeError:
            _require(False, f"cpu_overrides.{key}", "names no train setting")
    return cfg


def train_config(node: Any) -> TrainConfig:
    """The `train` section of a composed config as a checked TrainConfig."""
    return validate(core_to_dataclass(TrainConfig, node, "train", TrainConfigError))


def section_config(name: str, node: Any):
    """A command's section of a composed config (play, render, export, eval, wandb) as its checked dataclass."""
    cls, rules = COMMAND_SECTIONS[name]
    settings = core_to_dataclass(cls, node, name)
    check_ranges(settings, name, rules)
    return settings
