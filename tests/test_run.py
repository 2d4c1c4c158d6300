"""Tiny runs of PPO and A2C across action spaces and observation types (as SB3's tests/test_run.py)."""

import pytest
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)

from sb3_pdm import CnnPDMPolicy, MultiInputPDMPolicy, PDMCallback, PDMPolicy
from tests.conftest import none_equal, pdm_params

ALGOS = {"ppo": (PPO, dict(n_steps=64, batch_size=32, n_epochs=2)), "a2c": (A2C, dict(n_steps=8))}


def _learn(algo_name, policy, env, steps=256, **extra):
    algo, kwargs = ALGOS[algo_name]
    model = algo(policy, env, seed=0, **kwargs, **extra)
    before = pdm_params(model.policy)
    model.learn(steps, callback=PDMCallback())
    assert none_equal(before, pdm_params(model.policy))
    return model


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize(
    "env",
    [IdentityEnv(10), IdentityEnvBox(ep_length=10), IdentityEnvMultiDiscrete(3), IdentityEnvMultiBinary(3)],
    ids=["discrete", "box", "multidiscrete", "multibinary"],
)
def test_mlp_action_spaces(algo, env):
    _learn(algo, PDMPolicy, env, policy_kwargs=dict(net_arch=[16, 16]))


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("discrete", [True, False], ids=["discrete", "box"])
def test_cnn(algo, discrete):
    env = FakeImageEnv(screen_height=40, screen_width=40, n_channels=1, discrete=discrete)
    _learn(algo, CnnPDMPolicy, env, steps=128, policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=16)))


@pytest.mark.parametrize("algo", ALGOS)
def test_dict_observations(algo):
    env = SimpleMultiObsEnv(random_start=False)
    _learn(
        algo,
        MultiInputPDMPolicy,
        env,
        steps=128,
        policy_kwargs=dict(net_arch=[16], features_extractor_kwargs=dict(cnn_output_dim=8)),
    )


def test_progress_bar_and_sde():
    _learn("ppo", PDMPolicy, "Pendulum-v1", steps=128, use_sde=True, policy_kwargs=dict(net_arch=[16]))
    algo, kwargs = ALGOS["a2c"]
    algo(PDMPolicy, "CartPole-v1", **kwargs).learn(64, progress_bar=True)
