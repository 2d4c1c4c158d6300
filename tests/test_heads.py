import csv
import warnings

import gymnasium as gym
import pytest
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.logger import configure

from sb3_pdm import PDMCallback, PDMPolicy, PDMRolloutBuffer
from sb3_pdm.heads import NormalizedValueHead


def test_update_keeps_outputs_and_tracks_debiased_statistics():
    th.manual_seed(0)
    head = NormalizedValueHead(th.nn.Linear(5, 1), rate=0.1)
    features = th.randn(32, 5)
    before = head(features).detach().clone()
    targets = 40.0 + 7.0 * th.randn(64)
    head.update(targets)
    # The first update sets the statistics to the batch's own (debiasing) and leaves the outputs where they were.
    assert th.allclose(head.mean, targets.mean())
    assert th.allclose(head.std, targets.std(unbiased=False), rtol=1e-4)
    assert th.allclose(head(features), before, atol=1e-4)
    second = head(features).detach().clone()
    head.update(-3.0 + 0.5 * th.randn(64))
    assert th.allclose(head(features), second, atol=1e-4)
    assert head.mean < targets.mean() and head.n_updates == 2


def test_non_finite_targets_are_skipped():
    head = NormalizedValueHead(th.nn.Linear(3, 1), rate=0.5)
    head.update(th.tensor([1.0, float("nan")]))
    head.update(th.tensor([float("inf"), 2.0]))
    assert head.n_updates == 0 and head.mean == 0 and head.std == 1
    assert all(th.isfinite(p).all() for p in head.parameters())


@pytest.mark.parametrize("rate", [0, -0.1, 1.5, True, "fast"])
def test_bad_rate_raises_naming_the_parameter(rate):
    with pytest.raises(ValueError, match="value_norm_rate"):
        PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(value_norm_rate=rate), device="cpu")


def _ppo(policy_kwargs=None, **kwargs):
    return PPO(
        PDMPolicy,
        "CartPole-v1",
        n_steps=64,
        batch_size=32,
        n_epochs=3,
        policy_kwargs=dict(net_arch=[8], value_norm_rate=0.05, **(policy_kwargs or {})),
        seed=0,
        device="cpu",
        **kwargs,
    )


def test_statistics_move_in_training_only_and_are_saved(tmp_path):
    model = _ppo(rollout_buffer_class=PDMRolloutBuffer)
    head = model.policy.value_net
    assert isinstance(head, NormalizedValueHead)
    model.learn(128)
    # Two rollouts of 64 samples, 3 epochs of 2 minibatches each: one update per training minibatch, none while
    # collecting rollouts or bootstrapping.
    assert head.n_updates == 2 * 3 * 2
    assert head.mean > 0.5 and head.std > 0
    obs = th.as_tensor(model.env.reset(), dtype=th.float32)
    with th.no_grad():
        values = model.policy.predict_values(obs)
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    assert isinstance(loaded.policy.value_net, NormalizedValueHead)
    assert th.equal(loaded.policy.value_net.mean, head.mean) and th.equal(loaded.policy.value_net.n_updates, head.n_updates)
    with th.no_grad():
        assert th.equal(loaded.policy.predict_values(obs), values)


def test_callback_logs_the_return_statistics(tmp_path):
    model = _ppo()
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(192, callback=PDMCallback())
    lines = (tmp_path / "progress.csv").read_text().splitlines()
    header, last = lines[0].split(","), lines[-1].split(",")
    # Dumped after each rollout, before train(): the statistics left by the previous train(), in return units.
    assert float(last[header.index("pdm/value_mean")]) > 1.0 and float(last[header.index("pdm/value_std")]) > 0


def test_head_parameters_stay_in_the_algorithm_optimizer():
    model = _ppo(rollout_buffer_class=PDMRolloutBuffer)
    in_optimizer = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in model.policy.value_net.parameters()} <= in_optimizer


def test_without_signals_the_head_warns_and_stays_plain():
    model = A2C(PDMPolicy, "CartPole-v1", n_steps=8, policy_kwargs=dict(value_norm_rate=0.1), seed=0, device="cpu")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.learn(32)
    assert any("value_norm_rate" in str(w.message) for w in record)
    assert model.policy.value_net.n_updates == 0


class HugeRewardEvery37thStep(gym.Wrapper):
    """CartPole whose reward is 1e20 every 37th step: the returns overflow float32's squares."""

    def __init__(self) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.steps = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, (1e20 if self.steps % 37 == 0 else reward), terminated, truncated, info


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_huge_rewards_skip_the_value_heads_non_finite_updates_and_keep_everything_finite(tmp_path, algo):
    kwargs = dict(n_steps=64, batch_size=32, n_epochs=2) if algo is PPO else dict(n_steps=16)
    model = algo(PDMPolicy, HugeRewardEvery37thStep(), seed=0, device="cpu", **kwargs)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(640, callback=PDMCallback(), log_interval=1)
    head = model.policy.value_net
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    assert all(th.isfinite(b).all() for b in head.buffers())
    with open(tmp_path / "progress.csv") as file:
        skipped = [float(row["pdm/value_skipped"] or 0) for row in csv.DictReader(file)]
    assert sum(skipped) > 0


def test_non_finite_value_gradients_are_zeroed_and_counted():
    head = NormalizedValueHead(th.nn.Linear(3, 1), rate=0.5)
    loss = head(th.ones(4, 3)).sum() * float("inf")
    loss.backward()
    assert all(th.equal(p.grad, th.zeros_like(p)) for p in head.parameters())
    assert head.pop_skipped() == 2 and head.pop_skipped() == 0


def test_an_update_that_would_overflow_the_statistics_is_skipped():
    head = NormalizedValueHead(th.nn.Linear(3, 1), rate=0.5)
    head.update(th.tensor([1.0, 3.0]))
    state = {name: buffer.clone() for name, buffer in head.named_buffers()}
    head.update(th.tensor([1e20, 3e20]))  # finite, but their squares are not in float32
    assert all(th.equal(buffer, state[name]) for name, buffer in head.named_buffers())
    assert head.pop_skipped() == 1
