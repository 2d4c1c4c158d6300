import warnings

import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.logger import configure

import sb3_pdm.policies as policies_module
from sb3_pdm import PDMCallback, PDMPolicy, PDMRolloutBuffer
from sb3_pdm.layers import pdm_layers
from tests.conftest import all_equal, pdm_params, record_guidance_shapes


def _cartpole_ppo(n_epochs=2, pdm_kwargs=None, **kwargs):
    """A small PPO on CartPole: 64-step rollouts in two minibatches of 32."""
    return PPO(
        PDMPolicy,
        "CartPole-v1",
        n_steps=64,
        batch_size=32,
        n_epochs=n_epochs,
        seed=0,
        policy_kwargs=dict(pdm_kwargs=pdm_kwargs or {}),
        **kwargs,
    )


def _train(guidance_coef, **kwargs):
    model = _cartpole_ppo(pdm_kwargs=dict(guidance_coef=guidance_coef), rollout_buffer_class=PDMRolloutBuffer, **kwargs)
    model.learn(128)
    return model


def test_guidance_changes_the_hidden_features():
    unguided, guided = _train(0.0), _train(2.0)
    obs = th.as_tensor(np.stack([unguided.observation_space.sample() for _ in range(8)]))
    with th.no_grad():
        features = [m.policy.mlp_extractor(obs)[1] for m in (unguided, guided)]
    assert not th.allclose(features[0], features[1])


def test_callback_enables_guidance_on_the_stock_buffer_and_logs(tmp_path):
    model = PPO(PDMPolicy, "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0)
    assert type(model.rollout_buffer) is RolloutBuffer
    model.set_logger(configure(str(tmp_path), ["csv"]))
    with warnings.catch_warnings():
        # The callback routes the signals: the missing-guidance warning must not fire.
        warnings.filterwarnings("error", message="PDM guidance is on")
        model.learn(256, callback=PDMCallback())
    assert isinstance(model.rollout_buffer, RolloutBuffer) and type(model.rollout_buffer) is not RolloutBuffer
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in ("pdm/pi/0/loss", "pdm/vf/1/feature_scale", "pdm/pi/1/skipped", "pdm/guidance_missing", "train/value_loss"):
        assert key in header


def test_missing_signals_warn_once():
    model = A2C(PDMPolicy, "CartPole-v1", n_steps=8, seed=0)
    with pytest.warns(UserWarning, match="PDMRolloutBuffer") as record:
        model.learn(64)
    assert sum("PDM guidance is on" in str(w.message) for w in record) == 1
    assert model.policy.pop_missing_guidance() > 0


def test_two_models_never_share_signals(monkeypatch):
    """Two models trained in alternation in one process: each policy only ever reads its own buffer's returns."""
    seen: dict[int, list[th.Tensor]] = {}
    original = policies_module.read_signals

    def spy(obs):
        signals = original(obs)
        if signals is not None:
            seen.setdefault(id(spy.current), []).append(signals.returns.flatten().clone())
        return signals

    monkeypatch.setattr(policies_module, "read_signals", spy)
    models = [
        PPO(PDMPolicy, "CartPole-v1", n_steps=32, batch_size=16, n_epochs=1, gamma=gamma, seed=i)
        for i, gamma in enumerate((0.99, 0.5))
    ]
    callbacks = [PDMCallback(), PDMCallback()]
    for _ in range(2):
        for model, callback in zip(models, callbacks):
            spy.current = model
            model.learn(32, callback=callback, reset_num_timesteps=False)
            own = set(model.rollout_buffer.returns.flatten().round(decimals=5).tolist())
            batches = seen.pop(id(model))
            assert batches
            for returns in batches:
                assert set(np.round(returns.numpy(), 5).tolist()) <= own


def test_guidance_signal_per_trunk_role():
    model = PPO(PDMPolicy, "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0)
    model.policy.set_training_mode(True)
    obs = th.randn(32, 4)
    from sb3_pdm.guidance import GuidanceSignals, attach_signals

    actions = th.randint(0, 2, (32, 1)).float()
    attach_signals(obs, GuidanceSignals(th.randn(32), th.randn(32), actions))
    received = record_guidance_shapes(model.policy.mlp_extractor)
    model.policy.evaluate_actions(obs, actions.flatten().long())
    assert received["value_net.0"] == (32, 1)
    assert received["policy_net.0"] == (32, 2)
    before = pdm_params(model.policy)
    with th.no_grad():
        model.policy.evaluate_actions(obs, actions.flatten().long())
    assert all_equal(before, pdm_params(model.policy))


def _first_layers_guidance(pdm_kwargs, actor_pdm_kwargs, **extra_policy_kwargs):
    """
    One training forward pass of a PPO PDMPolicy on CartPole with known signals; what the first critic and actor layers
    received: ``{name: signal}``, with the returns, advantages and actions.
    """
    from sb3_pdm.guidance import GuidanceSignals, attach_signals

    policy_kwargs = dict(pdm_kwargs=pdm_kwargs, actor_pdm_kwargs=actor_pdm_kwargs, **extra_policy_kwargs)
    model = PPO(PDMPolicy, "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0, policy_kwargs=policy_kwargs)
    model.policy.set_training_mode(True)
    obs, returns, advantages = th.randn(32, 4), 50.0 + 10.0 * th.randn(32), 3.0 * th.randn(32)
    actions = th.randint(0, 2, (32,))
    attach_signals(obs, GuidanceSignals(returns, advantages, actions[:, None].float()))
    received = {}
    for name in ("value_net.0", "policy_net.0"):
        layer = model.policy.mlp_extractor.get_submodule(name)
        set_guidance = layer.set_guidance
        layer.set_guidance = lambda signal, name=name, set_guidance=set_guidance: (
            received.setdefault(name, signal),
            set_guidance(signal),
        )
    model.policy.evaluate_actions(obs, actions)
    return model, received, returns, advantages, actions


def test_each_trunk_gets_the_signal_of_its_role():
    _, received, returns, advantages, actions = _first_layers_guidance({}, None)
    # Critic trunk: standardised returns. Actor trunk: standardised advantages times the one-hot action.
    assert th.allclose(received["value_net.0"], ((returns - returns.mean()) / returns.std(unbiased=False))[:, None], atol=1e-5)
    standardized = (advantages - advantages.mean()) / advantages.std(unbiased=False)
    expected = standardized[:, None] * th.nn.functional.one_hot(actions, 2).float()
    assert th.allclose(received["policy_net.0"], expected, atol=1e-5)


class _StepsPerEpoch:
    """Counts, for every pass over the rollout, the local steps of the first PDM layer and the head updates."""

    def __init__(self, model):
        self.steps: dict[int, int] = {}
        self.head_steps: dict[int, int] = {}
        self._count(model, pdm_layers(model.policy)[0].optimizer, "step", self.steps)
        self._count(model, model.policy.optimizer, "step", self.head_steps)

    @staticmethod
    def _count(model, owner, name, counts):
        step = getattr(owner, name)

        def counted(*args, **kwargs):
            epoch = model.rollout_buffer._pdm_passes - 1
            counts[epoch] = counts.get(epoch, 0) + 1
            return step(*args, **kwargs)

        setattr(owner, name, counted)


@pytest.mark.parametrize("buffer_route", ["buffer_class", "callback"])
def test_local_epochs_hold_the_layers_fixed_after_the_first_passes(buffer_route):
    kwargs = dict(rollout_buffer_class=PDMRolloutBuffer) if buffer_route == "buffer_class" else {}
    model = _cartpole_ppo(n_epochs=4, pdm_kwargs=dict(local_epochs=2), **kwargs)
    counter = _StepsPerEpoch(model)
    frozen = pdm_layers(model.policy)[-1]
    frozen.local_learning = False
    frozen_before = pdm_params(frozen)
    model.learn(64, callback=PDMCallback() if buffer_route == "callback" else None)
    # Two minibatches per pass: local steps in passes 0 and 1 only, while the heads trained in all four.
    assert counter.steps == {0: 2, 1: 2}
    assert counter.head_steps == {0: 2, 1: 2, 2: 2, 3: 2}
    # Layers frozen by the user stay frozen once the fixed passes are over.
    assert frozen.local_learning is False and all_equal(frozen_before, pdm_params(frozen))
    assert all(layer.local_learning for layer in pdm_layers(model.policy)[:-1])


def test_local_epochs_default_steps_in_every_pass():
    model = _cartpole_ppo(n_epochs=3, rollout_buffer_class=PDMRolloutBuffer)
    counter = _StepsPerEpoch(model)
    model.learn(64)
    assert counter.steps == {0: 2, 1: 2, 2: 2}


def test_local_epochs_without_the_pdm_buffer_warn():
    model = _cartpole_ppo(pdm_kwargs=dict(guidance_coef=0.0, local_epochs=1))
    with pytest.warns(UserWarning, match="local_epochs or max_feature_move is set"):
        model.learn(64)


@pytest.mark.parametrize("buffer_route", ["buffer_class", "callback"])
def test_max_feature_move_holds_the_layers_for_the_rest_of_the_rollout(buffer_route):
    kwargs = dict(rollout_buffer_class=PDMRolloutBuffer) if buffer_route == "buffer_class" else {}
    # A limit no step stays under: each layer steps once per rollout, at its first minibatch.
    model = _cartpole_ppo(n_epochs=3, pdm_kwargs=dict(max_feature_move=1e-9), **kwargs)
    counter = _StepsPerEpoch(model)
    model.learn(128, callback=PDMCallback() if buffer_route == "callback" else None)
    assert counter.steps == {0: 2}  # two rollouts, one step each
    assert counter.head_steps == {0: 4, 1: 4, 2: 4}
    # With a limit no step reaches, the layers step in every minibatch of the passes local_epochs allows.
    model = _cartpole_ppo(n_epochs=3, pdm_kwargs=dict(max_feature_move=1e9), **kwargs)
    counter = _StepsPerEpoch(model)
    model.learn(128, callback=PDMCallback() if buffer_route == "callback" else None)
    assert counter.steps == {0: 4, 1: 4, 2: 4}


def test_max_feature_move_counts_held_steps_in_the_logger_and_leaves_a2c_alone(tmp_path):
    model = _cartpole_ppo(n_epochs=2, pdm_kwargs=dict(max_feature_move=1e-9))
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(128, callback=PDMCallback())
    lines = (tmp_path / "progress.csv").read_text().splitlines()
    logged = dict(zip(lines[0].split(","), lines[-1].split(",")))
    # The first train() (4 minibatches, the first one stepped), logged at the second rollout's end.
    assert float(logged["pdm/pi/0/held"]) == 3 and float(logged["pdm/vf/1/held"]) == 3
    # A2C takes one local step per rollout: the limit never holds it.
    model = A2C(PDMPolicy, "CartPole-v1", n_steps=8, seed=0, policy_kwargs=dict(pdm_kwargs=dict(max_feature_move=1e-9)))
    layer = pdm_layers(model.policy)[0]
    steps, step = [], layer.optimizer.step
    layer.optimizer.step = lambda: steps.append(1) or step()
    model.learn(64, callback=PDMCallback())
    assert len(steps) == 8  # 8 rollouts of 8 steps


def test_max_feature_move_applies_after_a_load(tmp_path):
    model = _cartpole_ppo(n_epochs=3, pdm_kwargs=dict(max_feature_move=1e-9), rollout_buffer_class=PDMRolloutBuffer)
    model.learn(64)
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", env=model.get_env())
    assert loaded.policy.pdm_config.max_feature_move == 1e-9
    counter = _StepsPerEpoch(loaded)
    loaded.learn(64, reset_num_timesteps=False)
    assert counter.steps == {0: 1}
