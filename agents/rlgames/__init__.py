"""coohoi's AMP agent on rl-games: registration of the agent, model and network builder. Trained policies play
back without rl-games (coohoi.agents.policy).

    from coohoi.agents.rlgames import make_runner
    runner = make_runner()          # an rl_games.torch_runner.Runner that knows algo/model/network "coohoi_amp"
"""

from __future__ import annotations

from rl_games.algos_torch import model_builder
from rl_games.torch_runner import Runner

from coohoi.agents.rlgames.agent import AMPAgent
from coohoi.agents.rlgames.network import AMPBuilder, ModelAMPContinuous

AMP_NAME = "coohoi_amp"  # the name of the algo, model and network in rl-games configs


def register_networks() -> None:
    model_builder.register_network(AMP_NAME, AMPBuilder)
    model_builder.register_model(AMP_NAME, ModelAMPContinuous)


def make_runner(algo_observer=None) -> Runner:
    register_networks()
    runner = Runner(algo_observer)
    runner.algo_factory.register_builder(AMP_NAME, lambda **kwargs: AMPAgent(**kwargs))
    return runner


__all__ = ["AMP_NAME", "AMPAgent", "AMPBuilder", "ModelAMPContinuous", "make_runner", "register_networks"]
