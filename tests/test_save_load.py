import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, PPO

from sb3_pdm import PDMCallback, PDMLayer, PDMPolicy
from tests.conftest import all_equal, pdm_params

KWARGS = {PPO: dict(n_steps=64, batch_size=32, n_epochs=2), A2C: dict(n_steps=16)}


def _tensors(policy):
    return {k: v for k, v in policy.state_dict().items() if isinstance(v, th.Tensor)}


def _local_optimizer_states(policy):
    return [m.optimizer.state_dict()["state"] for m in policy.modules() if isinstance(m, PDMLayer)]


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_save_load_restores_everything(tmp_path, algo):
    model = algo(PDMPolicy, "CartPole-v1", seed=0, policy_kwargs=dict(net_arch=[16, 16]), **KWARGS[algo])
    model.learn(256, callback=PDMCallback())
    obs = np.stack([model.observation_space.sample() for _ in range(10)])
    actions, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model")

    loaded = algo.load(tmp_path / "model")
    assert isinstance(loaded.policy, PDMPolicy)
    assert loaded.policy.pdm_config == model.policy.pdm_config
    assert all_equal(pdm_params(model.policy), pdm_params(loaded.policy))
    assert all_equal(_tensors(model.policy), _tensors(loaded.policy))
    np.testing.assert_array_equal(actions, loaded.predict(obs, deterministic=True)[0])
    for original, restored in zip(_local_optimizer_states(model.policy), _local_optimizer_states(loaded.policy)):
        assert original.keys() == restored.keys() and original
        for key in original:
            assert th.equal(original[key]["exp_avg_sq"], restored[key]["exp_avg_sq"])
            assert th.equal(th.as_tensor(original[key]["step"]), th.as_tensor(restored[key]["step"]))


@pytest.mark.parametrize(
    "algo, pdm_kwargs",
    [
        (PPO, {}),
        (A2C, {}),
        (PPO, dict(local_lr="lin_1e-3", max_feature_move=None)),
    ],
)
def test_resumed_training_matches_uninterrupted_training(tmp_path, algo, pdm_kwargs):
    policy_kwargs = dict(net_arch=[16, 16], pdm_kwargs=pdm_kwargs)
    model = algo(PDMPolicy, "CartPole-v1", seed=0, policy_kwargs=policy_kwargs, **KWARGS[algo])
    model.learn(128, callback=PDMCallback())
    model.save(tmp_path / "model")
    loaded = algo.load(tmp_path / "model", env=model.get_env())
    # Same rollout data and the same random state: training must continue identically.
    loaded.rollout_buffer = copy.deepcopy(model.rollout_buffer)
    loaded.set_logger(model.logger)
    for run in (model, loaded):
        th.manual_seed(123)
        np.random.seed(123)
        run.train()
    assert all_equal(_tensors(model.policy), _tensors(loaded.policy))
    assert all_equal(pdm_params(model.policy), pdm_params(loaded.policy))


def test_policy_save_and_load(tmp_path):
    model = PPO(PDMPolicy, "CartPole-v1", seed=0, policy_kwargs=dict(net_arch=[8], pdm_kwargs=dict(local_lr=1e-3)), n_steps=64)
    model.learn(64)
    model.policy.save(tmp_path / "policy.pth")
    policy = PDMPolicy.load(tmp_path / "policy.pth")
    assert policy.pdm_config.local_lr == 1e-3
    assert all_equal(pdm_params(model.policy), pdm_params(policy))
    obs = np.stack([model.observation_space.sample() for _ in range(5)])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], policy.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize("move", [None, 0.05])
def test_saved_config_survives_a_change_of_defaults(tmp_path, move):
    """The whole PDMConfig is saved: a model saved without the move limit (the default before 0.1) keeps it off."""
    model = PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(net_arch=[8], pdm_kwargs=dict(max_feature_move=move)), n_steps=32)
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model")
    assert loaded.policy.pdm_config.max_feature_move == move
    assert all(layer.config.max_feature_move == move for layer in loaded.policy.modules() if isinstance(layer, PDMLayer))
    assert PPO(PDMPolicy, "CartPole-v1", n_steps=32).policy.pdm_config.max_feature_move == 0.1


def test_saves_of_earlier_versions_load_with_their_removed_options_off(tmp_path):
    """0.1.0 saved every option, the removed ones at their "off" values; such a save loads and predicts the same."""
    model = PPO(PDMPolicy, "CartPole-v1", seed=0, policy_kwargs=dict(net_arch=[8]), n_steps=32)
    model.save(tmp_path / "model")
    old_kwargs = dict(
        net_arch=[8],
        pdm_kwargs=dict(model.policy.pdm_config.to_dict(), normalization="mean", guidance_gate=False, decorrelation_coef=0.0),
        skip_to_heads=False,
        head_input_norm_rate=None,
        action_code="onehot",
        value_loss_units="returns",
    )
    loaded = PPO.load(tmp_path / "model", custom_objects=dict(policy_kwargs=old_kwargs))
    assert loaded.policy.pdm_config == model.policy.pdm_config
    obs = np.stack([model.observation_space.sample() for _ in range(5)])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize(
    "old_kwargs, name",
    [
        (dict(head_input_norm_rate=0.01), "head_input_norm_rate"),
        (dict(pdm_kwargs=dict(decorrelation_coef=1.0)), "decorrelation_coef"),
    ],
)
def test_saves_that_used_a_removed_option_fail_naming_it_and_the_version(tmp_path, old_kwargs, name):
    model = PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(net_arch=[8]), n_steps=32)
    model.save(tmp_path / "model")
    with pytest.raises(ValueError, match=f"{name}=.*sb3_pdm==0.1.0"):
        PPO.load(tmp_path / "model", custom_objects=dict(policy_kwargs=dict(net_arch=[8], **old_kwargs)))
