"""One way to load a trained policy, for `coohoi play`, `render`, `export` and `eval`.

A policy comes from a checkpoint of either learner (rl-games PPO or the off-policy TD3) or from an ONNX file that
`coohoi export` wrote; either way it is a `Policy`: act(obs, deterministic) -> actions in [-1, 1], its metadata and
the config of the run that trained it. No rl-games object is built: a checkpoint's actor weights, observation
normaliser and action clamp become one `DeployedActor`, the very module that `coohoi export` writes, so that what is
played, evaluated and exported is the same computation.

The run config is the one stored in the checkpoint (runs before it was stored: the run folder's config.yaml); a
command's own settings of `task.*` and `train.*` apply on top of it, and `task=<name>` replaces its task.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from coohoi.agents.amp_modules import ACTIVATIONS, NORMALISER_CLIP, NORMALISER_EPS
from coohoi.agents.checkpoint import CheckpointError, load_checkpoint
from coohoi.config import override_key

ONNX_SUFFIX = ".onnx"
METADATA_SUFFIX = ".json"


class DeployedActor(nn.Module):
    """The deterministic actor as one module: clip((obs - mean) / std, +-obs_clip) -> MLP -> [tanh] -> clamp to
    [-1, 1]. Observations [B, num_obs] float32 in, actions [B, num_actions] float32 out (the env maps them to PD
    targets with the metadata's action offset and scale).

    It computes in float64 and rounds the actions to float32 once, at the end. In float32, onnxruntime and torch
    sum the matrix products in different orders and their actions differ by ~1e-7; a balancing humanoid amplifies
    that into different episodes within a few hundred steps (scripts/measure_export_parity.py: 93 of 128
    evaluation episodes of the phase-1 carry policy ended at a different step). In float64 the two differ by
    ~1e-16, below float32's resolution: none of the 128 did, so a checkpoint and its export evaluate the same."""

    def __init__(self, layers: list[nn.Linear], activation: str, obs_mean: torch.Tensor, obs_std: torch.Tensor,
                 obs_clip: float, squash: bool):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise CheckpointError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        modules: list[nn.Module] = []
        for i, layer in enumerate(layers):
            modules.append(layer)
            if i < len(layers) - 1:
                modules.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*modules).to(torch.float64)
        self.register_buffer("obs_mean", obs_mean.to(torch.float64))
        self.register_buffer("obs_std", obs_std.to(torch.float64))
        self.obs_clip = float(obs_clip)
        self.squash = bool(squash)
        self.num_obs, self.num_actions = layers[0].in_features, layers[-1].out_features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.clamp((obs.to(torch.float64) - self.obs_mean) / self.obs_std, -self.obs_clip, self.obs_clip)
        actions = self.net(x)
        if self.squash:
            actions = torch.tanh(actions)
        return torch.clamp(actions, -1.0, 1.0).to(torch.float32)


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer


def _indexed_layers(weights: dict[str, torch.Tensor], prefix: str) -> list[nn.Linear]:
    """The Linear layers `prefix<i>.weight/.bias` in order of i (activations sit between them in rl-games' MLPs)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.weight$")
    indices = sorted(int(m.group(1)) for k in weights if (m := pattern.match(k)))
    return [_linear(weights[f"{prefix}{i}.weight"], weights[f"{prefix}{i}.bias"]) for i in indices]


def actor_from_checkpoint(path: str | Path, state: dict) -> tuple[DeployedActor, torch.Tensor | None]:
    """A checkpoint's actor (PPO: rl-games' actor MLP and mean head; TD3: its tanh actor) with its observation
    normaliser folded in, and the PPO policy's log-std [num_actions] (None for TD3, whose noise is training's)."""
    meta = state.get("coohoi", {})
    try:
        if meta.get("algo") == "td3":
            layers = _indexed_layers({k: v.detach().cpu() for k, v in state["model"]["actor"].items()}, "net.")
            norm = state["model"]["obs_norm"] if meta.get("obs_normalization", True) else None
            log_std, squash, activation = None, True, meta["activation"]
        else:
            model = {k.removeprefix("_orig_mod."): v.detach().cpu() for k, v in state["model"].items()}
            layers = _indexed_layers(model, "a2c_network.actor_mlp.") + [
                _linear(model["a2c_network.mu.weight"], model["a2c_network.mu.bias"])]
            # rl-games' normaliser is ours: (x - mean) / sqrt(var + eps), clipped, with the same eps and clip
            norm = ({"mean": model["running_mean_std.running_mean"], "var": model["running_mean_std.running_var"]}
                    if "running_mean_std.running_mean" in model else None)
            log_std, squash, activation = model.get("a2c_network.sigma"), False, meta.get("activation", "relu")
    except KeyError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {exc} (not a coohoi checkpoint)") from exc
    size = layers[0].in_features
    if norm is None:
        mean, std, clip = torch.zeros(size), torch.ones(size), float("inf")
    else:
        mean, std, clip = norm["mean"], torch.sqrt(norm["var"].double() + NORMALISER_EPS), NORMALISER_CLIP
    return DeployedActor(layers, activation, mean, std, clip, squash), log_std


def stored_run_config(path: str | Path, state: dict | None = None) -> DictConfig | None:
    """The config of the run that wrote a checkpoint: stored in it, else the run folder's config.yaml
    (runs/<experiment>/nn/<file>.pth -> runs/<experiment>/config.yaml), else None."""
    meta = (state or {}).get("coohoi", {})
    if meta.get("config"):
        return OmegaConf.create(meta["config"])
    beside = Path(path).resolve().parent.parent / "config.yaml"
    return OmegaConf.load(beside) if beside.is_file() else None


# What a policy's environment must match, compared key by key (check_compatible): the policy observation's layout,
# the action's size, scale, offset and clamp, the joint order, the PD gains and torque limits, the control period.
COMPATIBILITY_KEYS = (("observation", "groups", "policy"), ("action", "size"), ("action", "scale"),
                      ("action", "offset"), ("action", "clip"), ("joints",), ("pd", "kp"), ("pd", "kd"),
                      ("pd", "torque_limit"), ("control", "policy_dt"))
COMPAT_TOLERANCE = 1e-6


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) != len(b) or any(_differs(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) > COMPAT_TOLERANCE * max(1.0, abs(float(b)))
        except (TypeError, ValueError):
            return True
    return a != b


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def check_compatible(policy: "Policy", env) -> None:
    """Refuse a policy whose environment metadata differs from this env's, naming every key that differs (policies
    without it, checkpoints from before it was stored: their observation and action sizes)."""
    ours = env.policy_metadata()
    theirs = policy.metadata.get("env") if policy.kind == "checkpoint" else policy.metadata
    problems = []
    if policy.num_obs != env.num_obs or policy.num_actions != env.num_actions:
        problems.append(f"observations/actions {policy.num_obs}/{policy.num_actions} in the policy, "
                        f"{env.num_obs}/{env.num_actions} here")
    if theirs:
        for path in COMPATIBILITY_KEYS:
            a, b = theirs, ours
            for key in path:
                a = a.get(key) if isinstance(a, dict) else None
                b = b.get(key) if isinstance(b, dict) else None
            if _differs(a, b):
                problems.append(f"{'.'.join(path)}: {_short(a)} in the policy, {_short(b)} here")
    if problems:
        raise CheckpointError(f"policy {policy.source!r} (task {policy.metadata.get('task')!r}) does not match this "
                              f"task ({type(env).__name__}): " + "; ".join(problems))


@dataclass
class Policy:
    """A loaded policy. `metadata` is the checkpoint's (task, algo, sizes) or the exported file's JSON; `config` the
    run config it was trained with (None when unknown)."""

    source: str
    kind: str  # "checkpoint" | "onnx"
    metadata: dict[str, Any]
    config: DictConfig | None
    actor: DeployedActor | None = None  # checkpoints
    log_std: torch.Tensor | None = None  # PPO checkpoints: the stochastic policy's std
    session: Any = None  # ONNX: an onnxruntime InferenceSession
    _device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def num_obs(self) -> int:
        return int(self.metadata["num_obs"])

    @property
    def num_actions(self) -> int:
        return int(self.metadata["num_actions"])

    def to(self, device) -> "Policy":
        self._device = torch.device(device)
        if self.actor is not None:
            self.actor.to(self._device)
        if self.log_std is not None:
            self.log_std = self.log_std.to(self._device)
        return self

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None
            ) -> torch.Tensor:
        """Actions [rows, num_actions] for observations [rows, num_obs]. deterministic=False adds the PPO policy's
        Gaussian noise (clamped to [-1, 1], as rl-games' player does); TD3 and ONNX policies act deterministically."""
        if self.session is not None:
            import numpy as np

            out = self.session.run(None, {"obs": obs.detach().to("cpu", torch.float32).numpy()})[0]
            return torch.from_numpy(np.ascontiguousarray(out)).to(obs.device)
        actions = self.actor(obs.to(self._device, torch.float32))
        if not deterministic and self.log_std is not None:
            mu = actions  # the clamp of the deterministic action is a no-op for |mu| <= 1, as trained
            noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            actions = torch.clamp(mu + torch.exp(self.log_std.to(mu)) * noise, -1.0, 1.0)
        return actions.to(obs.device)


def load_policy(path: str | Path) -> Policy:
    """A checkpoint (.pth, either learner) or an exported ONNX file (with its metadata JSON beside it) as a Policy."""
    path = Path(path)
    if path.suffix == ONNX_SUFFIX:
        return _load_onnx(path)
    state = load_checkpoint(path, map_location="cpu")
    meta = dict(state.get("coohoi", {}), epoch=state.get("epoch"), frame=state.get("frame"))
    for key in ("num_obs", "num_actions"):
        if key not in meta:
            raise CheckpointError(f"checkpoint {str(path)!r} carries no {key} (not written by coohoi)")
    actor, log_std = actor_from_checkpoint(path, state)
    actor.eval()
    if (actor.num_obs, actor.num_actions) != (meta["num_obs"], meta["num_actions"]):
        raise CheckpointError(f"checkpoint {str(path)!r}: its actor maps {actor.num_obs} observations to "
                              f"{actor.num_actions} actions, its metadata says {meta['num_obs']} and "
                              f"{meta['num_actions']}")
    return Policy(str(path), "checkpoint", meta, stored_run_config(path, state), actor=actor, log_std=log_std)


def metadata_path(onnx_path: str | Path) -> Path:
    return Path(onnx_path).with_suffix(METADATA_SUFFIX)


def _load_onnx(path: Path) -> Policy:
    meta_file = metadata_path(path)
    if not path.is_file():
        raise CheckpointError(f"policy {str(path)!r} does not exist")
    if not meta_file.is_file():
        raise CheckpointError(f"policy {str(path)!r} has no metadata {meta_file.name} beside it (coohoi export "
                              f"writes both)")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"policy metadata {str(meta_file)!r} is not valid JSON: {exc}") from exc
    session = onnx_session(path)
    try:
        sizes = {"num_obs": int(meta["observation"]["policy_size"]), "num_actions": int(meta["action"]["size"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"policy metadata {str(meta_file)!r} lacks the observation or action size "
                              f"({exc}); it was not written by coohoi export") from exc
    config = OmegaConf.create(meta["config"]) if meta.get("config") else None
    return Policy(str(path), "onnx", {**sizes, **meta}, config, session=session)


def onnx_session(path: str | Path):
    """An onnxruntime session on the CPU with one thread (small MLPs: the fastest, and results do not depend on the
    thread count); a file it cannot read raises CheckpointError."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a broken file
        raise CheckpointError(f"policy {str(path)!r} cannot be read by onnxruntime: {exc}") from exc


def apply_overrides(base: DictConfig, overrides: list[str], sections: tuple[str, ...] = ("task", "train")
                    ) -> DictConfig:
    """`base` with the command line's settings of keys under `sections` applied on top (hydra's override grammar;
    `+key` and `++key` too), so that `coohoi eval checkpoint=X task.env.team_size_range=[3,3]` changes the stored
    run's task."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = base.copy()
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if "." not in key or key.split(".", 1)[0] not in sections:
            continue
        if override.is_delete():
            raise ValueError(f"{key}: deleting a setting of the trained run is not supported")
        value = override.value()
        OmegaConf.update(out, key, OmegaConf.create({"v": value}).v if isinstance(value, (list, dict)) else value,
                         merge=False, force_add=True)
    return out


def policy_run_config(cfg: DictConfig, overrides: list[str], policy: Policy) -> DictConfig:
    """The config to run a policy with: the command's (engine, seed, command settings) with the policy's own task
    and training sections, unless the command line chose another task (`task=<name>`); the command line's dotted
    settings of task.* and train.* apply on top either way."""
    stored = policy.config
    chose_task = any(override_key(o) == "task" for o in overrides)
    if stored is None or "task" not in stored:
        return cfg
    merged = cfg.copy()
    OmegaConf.set_struct(merged, False)
    if not chose_task:
        merged.task = stored.task
    if "train" in stored:
        merged.train = stored.train
    merged = apply_overrides(merged, overrides)
    return merged


__all__ = ["DeployedActor", "Policy", "actor_from_checkpoint", "apply_overrides", "check_compatible", "load_policy",
           "metadata_path", "onnx_session", "policy_run_config", "stored_run_config"]
