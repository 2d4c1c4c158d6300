"""Local PDM updates happen in train() only (the pattern of SB3's tests/test_train_eval_mode.py)."""

import pytest
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_pdm import PDMCallback, PDMPolicy
from tests.conftest import all_equal, none_equal, pdm_params


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_learn_moves_hidden_layers_and_rollouts_do_not(algo):
    kwargs = dict(n_steps=64, batch_size=32) if algo is PPO else dict(n_steps=16)
    model = algo(PDMPolicy, "CartPole-v1", seed=0, **kwargs)
    before = pdm_params(model.policy)
    model.learn(128, callback=PDMCallback())
    after_learn = pdm_params(model.policy)
    assert none_equal(before, after_learn)

    # Rollout collection (eval mode, no_grad) leaves them alone.
    callback = CallbackList([])
    callback.init_callback(model)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
    assert all_equal(after_learn, pdm_params(model.policy))

    model.predict(model.env.observation_space.sample(), deterministic=True)
    model.predict(model.env.observation_space.sample(), deterministic=False)
    evaluate_policy(model, model.get_env(), n_eval_episodes=2)
    assert all_equal(after_learn, pdm_params(model.policy))


def test_train_mode_forward_without_grad_does_not_move():
    model = PPO(PDMPolicy, "CartPole-v1", n_steps=64, seed=0)
    import torch as th

    obs = th.randn(16, 4)
    model.policy.set_training_mode(True)
    before = pdm_params(model.policy)
    with th.no_grad():
        model.policy.evaluate_actions(obs, th.zeros(16, dtype=th.long))
        model.policy.predict_values(obs)
    assert all_equal(before, pdm_params(model.policy))
