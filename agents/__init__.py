"""Learning agents (installed as coohoi.agents).

- amp_modules: discriminator, its loss, the style reward, replay buffer, feature normaliser (no rl-games needed)
- adapter: coohoi.envs environments as an rl-games vecenv (on device) and as a gymnasium-style vector env
- rlgames: the AMP agent, player, model and network builder registered with rl-games
- train: `coohoi train` / `coohoi play`, and the training-throughput hook used by `coohoi bench`
"""
