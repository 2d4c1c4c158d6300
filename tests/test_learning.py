"""
That an agent learns at all: PDM with SB3's default PPO hyperparameters solves CartPole-v1 in 100k steps, and its
local learning is what does it: the frozen-random-features control (same hyperparameters) stays below the bar PDM
clears. Three independent runs, so that pytest-xdist spreads them over its workers.
"""

import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_pdm import PDMCallback, PDMPolicy

#: The bar: CartPole-v1's maximum return is 500.
SOLVED = 475


def _final_return(seed: int, local_learning: bool) -> float:
    policy_kwargs = dict(pdm_kwargs=dict(local_learning=local_learning))
    model = PPO(PDMPolicy, "CartPole-v1", seed=seed, device="cpu", policy_kwargs=policy_kwargs)
    model.learn(100_000, callback=PDMCallback())
    mean_return, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=10, deterministic=True)
    return float(mean_return)


@pytest.mark.parametrize("seed", [0, 1])
def test_pdm_solves_cartpole_with_sb3_default_ppo(seed):
    assert _final_return(seed, local_learning=True) >= SOLVED


def test_the_frozen_control_does_not_solve_it():
    assert _final_return(0, local_learning=False) < SOLVED
