"""End-to-end training on a GPU; skipped where CUDA is absent."""

import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.envs import FakeImageEnv

from sb3_pdm import CnnPDMPolicy, PDMCallback, PDMLayer, PDMPolicy
from tests.conftest import none_equal, pdm_params

pytestmark = pytest.mark.skipif(not th.cuda.is_available(), reason="CUDA is not available")


@pytest.mark.parametrize(
    "policy, env, kwargs",
    [
        (PDMPolicy, "CartPole-v1", dict(net_arch=[64, 64])),
        (CnnPDMPolicy, FakeImageEnv(screen_height=64, screen_width=64, n_channels=4), dict()),
    ],
    ids=["mlp", "cnn"],
)
def test_trains_on_cuda(policy, env, kwargs):
    model = PPO(policy, env, device="cuda", n_steps=64, batch_size=32, n_epochs=2, policy_kwargs=kwargs, seed=0)
    layers = [m for m in model.policy.modules() if isinstance(m, PDMLayer)]
    assert layers and all(p.is_cuda for layer in layers for p in layer.parameters())
    before = pdm_params(model.policy)
    model.learn(128, callback=PDMCallback())
    after = pdm_params(model.policy)
    assert none_equal(before, after)
    assert all(th.isfinite(p).all() for p in after.values())
