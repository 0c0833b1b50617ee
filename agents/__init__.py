"""Learning agents (installed as coohoi.agents).

- amp_modules: discriminator, its loss, the style reward, replay buffer, feature normaliser (no rl-games needed)
- adapter: coohoi.envs environments as an rl-games vecenv (on device) and as a gymnasium-style vector env
- rlgames: the AMP agent, model and network builder registered with rl-games
- offpolicy, replay, curriculum: the off-policy (TD3) learner, its transition replay, the assistance curriculum
- train: `coohoi train` (both learners and the session around them)
- policy: the one policy loader (checkpoints of either learner, exported ONNX) for play, render, export and eval
- play: `coohoi play` (viewer, headless) and `coohoi render` (videos)
- export: `coohoi export` (ONNX, TorchScript, metadata JSON)
- evaluation: baselines, periodic evaluation and `coohoi eval`
- throughput: training throughput for `coohoi bench`
"""
