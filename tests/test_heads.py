import warnings

import pytest
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.logger import configure

from sb3_pdm import PDMCallback, PDMPolicy, PDMRolloutBuffer
from sb3_pdm.heads import InputNormalizedHead, NormalizedValueHead, ScaledInputHead, follow_trunk, normalized_value_head


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


@pytest.mark.parametrize("inner", ["linear", "value"])
def test_input_normalized_head_keeps_outputs_and_standardizes_features(inner):
    th.manual_seed(0)
    head = th.nn.Linear(4, 3) if inner == "linear" else NormalizedValueHead(th.nn.Linear(4, 1), rate=0.5)
    wrapped = InputNormalizedHead(head, rate=0.2)
    # Correlated features of very different scales, off-centre.
    features = th.randn(256, 4) @ th.tensor([[2.0, 0.1, 0, 0], [0, 0.05, 0, 0], [0, 0, 1.0, 0.3], [0, 0, 0, 0.02]]) + 3.0
    wrapped.eval()
    before = wrapped(features).detach().clone()
    wrapped.train()
    during = wrapped(features)
    # The first update sets the statistics to the batch's own (debiasing) and leaves the outputs where they were.
    assert wrapped.n_updates == 1
    assert th.allclose(wrapped.mean, features.mean(dim=0), atol=1e-5)
    assert th.allclose(wrapped.std, features.std(dim=0, unbiased=False), rtol=1e-3)
    assert th.allclose(during, before, atol=1e-4)
    # What the head reads: zero-mean, unit-std features.
    seen = []
    handle = head.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with th.no_grad():
        wrapped(features)
    handle.remove()
    assert th.allclose(seen[0].mean(dim=0), th.zeros(4), atol=1e-4)
    assert th.allclose(seen[0].std(dim=0, unbiased=False), th.ones(4), atol=1e-3)
    # Outputs survive later updates on other batches too.
    other = 0.5 * features - 1.0
    wrapped.eval()
    reference = wrapped(features).detach().clone()
    wrapped.train()
    wrapped(other)
    wrapped.eval()
    assert th.allclose(wrapped(features), reference, atol=1e-4)


def test_input_normalized_head_floors_the_std_and_skips_non_finite_batches():
    wrapped = InputNormalizedHead(th.nn.Linear(2, 1), rate=1.0)
    wrapped(th.tensor([[1.0, 5.0], [3.0, 5.0]]))
    # A constant unit is divided by MIN_STD, not by 0.
    assert th.allclose(wrapped.std, th.tensor([1.0, InputNormalizedHead.MIN_STD]))
    wrapped(th.tensor([[float("nan"), 1.0], [0.0, 2.0]]))
    assert wrapped.n_updates == 1 and all(th.isfinite(p).all() for p in wrapped.parameters())


@pytest.mark.parametrize("rate", [0, -0.1, 1.5, True, "fast", {}, {"vf": 0}, {"value": 0.01}, {"pi": 0.01, "qf": 0.1}])
def test_bad_head_input_norm_rate_raises_naming_the_parameter(rate):
    with pytest.raises(ValueError, match="head_input_norm_rate"):
        PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(head_input_norm_rate=rate), device="cpu")


def test_head_input_statistics_move_in_training_only_and_are_saved(tmp_path):
    model = _ppo(dict(head_input_norm_rate=0.05), rollout_buffer_class=PDMRolloutBuffer)
    actor, critic = model.policy.action_net, model.policy.value_net
    assert isinstance(actor, InputNormalizedHead) and isinstance(critic, InputNormalizedHead)
    assert isinstance(critic.head, NormalizedValueHead)
    in_optimizer = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in [*actor.parameters(), *critic.parameters()]} <= in_optimizer
    model.learn(128)
    # One update per training minibatch (2 rollouts x 3 epochs x 2 minibatches), none in rollouts or bootstrapping;
    # the value head's return statistics still move.
    assert actor.n_updates == critic.n_updates == 2 * 3 * 2
    assert critic.head.n_updates == 2 * 3 * 2
    assert (actor.std != 1).all() and (critic.mean != 0).all()
    obs = th.as_tensor(model.env.reset(), dtype=th.float32)
    with th.no_grad():
        actions = model.policy.get_distribution(obs).distribution.probs
        values = model.policy.predict_values(obs)
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    assert loaded.policy.head_input_norm_rate == 0.05
    assert th.equal(loaded.policy.action_net.mean, actor.mean) and th.equal(loaded.policy.value_net.std, critic.std)
    with th.no_grad():
        assert th.equal(loaded.policy.get_distribution(obs).distribution.probs, actions)
        assert th.equal(loaded.policy.predict_values(obs), values)


@pytest.mark.parametrize("key", ["pi", "vf"])
def test_head_input_norm_rate_per_head_standardizes_that_head_only_and_is_saved(tmp_path, key):
    model = _ppo(dict(head_input_norm_rate={key: 0.05}), rollout_buffer_class=PDMRolloutBuffer)
    normalized, plain = (
        (model.policy.action_net, model.policy.value_net) if key == "pi" else (model.policy.value_net, model.policy.action_net)
    )
    assert isinstance(normalized, InputNormalizedHead) and not isinstance(plain, InputNormalizedHead)
    # The value head keeps its return statistics either way.
    critic = model.policy.value_net.head if key == "vf" else model.policy.value_net
    assert isinstance(critic, NormalizedValueHead)
    model.learn(128)
    assert normalized.n_updates == 2 * 3 * 2 and (normalized.std != 1).all()
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    assert loaded.policy.head_input_norm_rate == {key: 0.05}
    loaded_head = loaded.policy.action_net if key == "pi" else loaded.policy.value_net
    assert isinstance(loaded_head, InputNormalizedHead) and th.equal(loaded_head.std, normalized.std)


@pytest.mark.parametrize("inner", ["linear", "value"])
def test_scaled_input_head_keeps_initial_outputs_and_reads_gain_times_features(inner):
    th.manual_seed(0)
    head = th.nn.Linear(6, 2) if inner == "linear" else NormalizedValueHead(th.nn.Linear(6, 1), rate=0.1)
    features = th.randn(16, 6)
    with th.no_grad():
        before = head(features)
    weight = head.weight.detach().clone() if inner == "linear" else head.linear.weight.detach().clone()
    scaled = ScaledInputHead(head, 4.0)
    with th.no_grad():
        assert th.allclose(scaled(features), before, atol=1e-6)
    # The weights were divided by the gain, and the head reads gain * h.
    assert th.equal(scaled.linear.weight, weight / 4.0)
    assert scaled.linear is (head if inner == "linear" else head.linear)
    with th.no_grad():
        assert th.equal(scaled(features), head(4.0 * features))
    assert normalized_value_head(scaled) is (head if inner == "value" else None)


def test_scaled_input_head_weights_get_gain_times_the_gradient():
    th.manual_seed(0)
    plain = th.nn.Linear(6, 2)
    scaled = ScaledInputHead(th.nn.Linear(6, 2), 4.0)
    with th.no_grad():
        scaled.linear.weight.copy_(plain.weight / 4.0)
        scaled.linear.bias.copy_(plain.bias)
    features = th.randn(16, 6)
    for head in (plain, scaled):
        (head(features) ** 2).sum().backward()
    # Same outputs, so the same output gradient; the weights read 4 h, so theirs is 4 times larger (a step of Adam or
    # RMSprop, about the rate whatever the gradient's size, then moves the output 4 times as far).
    assert th.allclose(scaled.linear.weight.grad, 4.0 * plain.weight.grad, rtol=1e-5)
    assert th.allclose(scaled.linear.bias.grad, plain.bias.grad, rtol=1e-5)


@pytest.mark.parametrize("gain", [0, -1.0, float("inf"), float("nan"), True, "fast", {}, {"qf": 2.0}, {"pi": 0}])
def test_bad_head_input_gain_raises_naming_the_parameter(gain):
    with pytest.raises(ValueError, match="head_input_gain"):
        PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(head_input_gain=gain), device="cpu")


def test_head_input_gain_and_norm_rate_on_one_head_raise_naming_both():
    with pytest.raises(ValueError, match="head_input_gain and head_input_norm_rate"):
        PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(head_input_gain=4.0, head_input_norm_rate={"vf": 0.01}))
    # On different heads they combine.
    policy = PPO(
        PDMPolicy, "CartPole-v1", policy_kwargs=dict(head_input_gain={"pi": 4.0}, head_input_norm_rate={"vf": 0.01})
    ).policy
    assert isinstance(policy.action_net, ScaledInputHead) and isinstance(policy.value_net, InputNormalizedHead)


def test_head_input_gain_keeps_initial_outputs_trains_and_is_saved(tmp_path):
    plain = _ppo({}, rollout_buffer_class=PDMRolloutBuffer)
    model = _ppo(dict(head_input_gain=4.0), rollout_buffer_class=PDMRolloutBuffer)
    actor, critic = model.policy.action_net, model.policy.value_net
    assert isinstance(actor, ScaledInputHead) and isinstance(critic, ScaledInputHead) and actor.gain == 4.0
    # The value head keeps its return statistics inside the gain, and the optimizer holds the heads' parameters.
    assert isinstance(critic.head, NormalizedValueHead)
    in_optimizer = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in [*actor.parameters(), *critic.parameters()]} <= in_optimizer
    obs = th.as_tensor(model.env.reset(), dtype=th.float32)
    with th.no_grad():
        # Same seed, same initial policy: the gain changes how the heads learn, not where they start.
        assert th.allclose(model.policy.predict_values(obs), plain.policy.predict_values(obs), atol=1e-6)
        assert th.allclose(
            model.policy.get_distribution(obs).distribution.probs, plain.policy.get_distribution(obs).distribution.probs
        )
    weight = actor.linear.weight.detach().clone()
    model.learn(128)
    assert not th.equal(actor.linear.weight, weight) and critic.head.n_updates == 2 * 3 * 2
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    with th.no_grad():
        actions = model.policy.get_distribution(obs).distribution.probs
        values = model.policy.predict_values(obs)
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    assert loaded.policy.head_input_gain == 4.0 and isinstance(loaded.policy.action_net, ScaledInputHead)
    with th.no_grad():
        assert th.equal(loaded.policy.get_distribution(obs).distribution.probs, actions)
        assert th.equal(loaded.policy.predict_values(obs), values)


@pytest.mark.parametrize("key", ["pi", "vf"])
def test_head_input_gain_per_head_scales_that_head_only(key):
    model = _ppo(dict(head_input_gain={key: 2.0}))
    scaled, plain = (
        (model.policy.action_net, model.policy.value_net) if key == "pi" else (model.policy.value_net, model.policy.action_net)
    )
    assert isinstance(scaled, ScaledInputHead) and scaled.gain == 2.0 and not isinstance(plain, ScaledInputHead)


@pytest.mark.parametrize("kind", ["linear", "value", "standardized", "scaled"])
def test_follow_trunk_keeps_the_head_output_on_the_batch(kind):
    th.manual_seed(0)
    head = {
        "linear": lambda: th.nn.Linear(16, 3),
        "value": lambda: NormalizedValueHead(th.nn.Linear(16, 1), rate=0.1),
        "standardized": lambda: InputNormalizedHead(th.nn.Linear(16, 3), rate=0.1),
        "scaled": lambda: ScaledInputHead(th.nn.Linear(16, 3), 4.0),
    }[kind]()
    before = th.randn(64, 16)
    if kind == "standardized":
        head(3.0 * before + 1.0)  # statistics away from (0, 1)
    head.eval()
    # An affine move of the features can be undone exactly by the head's linear map; any other move in part.
    affine = before @ (th.eye(16) + 0.3 * th.randn(16, 16)) + 0.5
    other = before + 0.3 * th.randn(64, 16)
    state = {k: v.clone() for k, v in head.state_dict().items()}
    for after, exact in ((affine, True), (other, False)):
        head.load_state_dict(state)
        with th.no_grad():
            target, moved = head(before), head(after)
        follow_trunk(head, before, after, ridge=1e-6)
        with th.no_grad():
            error, moved_error = (head(after) - target).norm(), (moved - target).norm()
        assert error < (1e-3 if exact else 1.0) * moved_error


def test_follow_trunk_skips_a_non_finite_correction():
    head = th.nn.Linear(4, 2)
    state = {k: v.clone() for k, v in head.state_dict().items()}
    follow_trunk(head, th.randn(8, 4), th.full((8, 4), float("nan")))
    assert all(th.equal(v, state[k]) for k, v in head.state_dict().items())


@pytest.mark.parametrize("value", ["actor", "", [], ["pi", "qf"], True, 1, {"pi": True}])
def test_bad_head_follow_raises_naming_the_parameter(value):
    with pytest.raises(ValueError, match="head_follow"):
        PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(head_follow=value), device="cpu")


def _follow_pair(head_follow, **pdm_kwargs):
    """Two policies built alike from one seed, one with ``head_follow``, and a training batch."""
    # No guidance, epoch limit or value statistics: nothing here needs the rollout's signals.
    pdm_kwargs = dict(guidance_coef=0.0, local_epochs=None, local_lr=1e-2, **pdm_kwargs)
    policy_kwargs = dict(net_arch=[16], pdm_kwargs=pdm_kwargs, value_norm_rate=None)
    models = [
        PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(policy_kwargs, head_follow=f), seed=0) for f in (None, head_follow)
    ]
    obs, actions = th.randn(32, 4), th.randint(0, 2, (32,))
    return models, obs, actions


def _logits(policy, obs):
    with th.no_grad():
        return policy.get_distribution(obs).distribution.logits


def test_head_follow_moves_the_head_not_the_trunk_and_keeps_the_policy_on_the_batch():
    (plain, following), obs, actions = _follow_pair("pi")
    logits = _logits(plain.policy, obs)
    assert th.equal(logits, _logits(following.policy, obs))
    head = following.policy.action_net.weight.detach().clone()
    for model in (plain, following):
        model.policy.set_training_mode(True)
        model.policy.evaluate_actions(obs, actions)
        model.policy.set_training_mode(False)
    # The trunks took the same local step; only the following policy's action head moved with it.
    for a, b in zip(plain.policy.mlp_extractor.parameters(), following.policy.mlp_extractor.parameters()):
        assert th.equal(a, b)
    assert th.equal(plain.policy.value_net.weight, following.policy.value_net.weight)
    assert not th.equal(following.policy.action_net.weight, head)
    plain_move = (_logits(plain.policy, obs) - logits).norm()
    follow_move = (_logits(following.policy, obs) - logits).norm()
    # Part of the move remains: the trunk's move is not affine, and the correction has a ridge (FOLLOW_RIDGE).
    assert plain_move > 0 and follow_move < 0.6 * plain_move


def test_head_follow_runs_no_second_pass_without_local_steps(monkeypatch):
    (_, following), obs, actions = _follow_pair(["pi", "vf"], local_learning=False)
    extractor = following.policy.mlp_extractor
    passes = []
    latent = extractor._latent
    monkeypatch.setattr(extractor, "_latent", lambda *args: passes.append(1) or latent(*args))
    state = {k: v.clone() for k, v in following.policy.state_dict().items() if isinstance(v, th.Tensor)}
    following.policy.set_training_mode(True)
    following.policy.evaluate_actions(obs, actions)
    # Frozen layers do not step, so the trunks run once each and no head is corrected.
    assert len(passes) == 2
    for layer in extractor.policy_net:
        layer.local_learning = True
    following.policy.evaluate_actions(obs, actions)
    # Now the actor trunk steps and runs again for its head; the frozen critic trunk runs once.
    assert len(passes) == 2 + 3
    following.policy.set_training_mode(False)
    passes.clear()
    following.policy.predict(obs.numpy())
    assert len(passes) == 1
    changed = [k for k, v in following.policy.state_dict().items() if k in state and not th.equal(v, state[k])]
    assert changed and all(k.startswith(("mlp_extractor.policy_net", "action_net")) for k in changed)


@pytest.mark.parametrize("share_trunk", [False, True])
def test_head_follow_trains_and_is_saved(tmp_path, share_trunk):
    model = _ppo(dict(head_follow=["pi", "vf"], head_input_norm_rate=0.05, share_trunk=share_trunk))
    model.learn(128, callback=PDMCallback())
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    followers = model.policy.mlp_extractor._followers
    assert followers["pi"] is model.policy.action_net and followers["vf"] is model.policy.value_net
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    assert loaded.policy.head_follow == ["pi", "vf"]
    assert loaded.policy.mlp_extractor._followers["pi"] is loaded.policy.action_net
    obs = th.as_tensor(model.env.reset(), dtype=th.float32)
    assert th.equal(_logits(loaded.policy, obs), _logits(model.policy, obs))


def test_normalized_loss_units_divide_the_value_heads_gradient_by_the_variance():
    th.manual_seed(0)
    heads = [NormalizedValueHead(th.nn.Linear(5, 1), rate=1.0, loss_units=units) for units in ("returns", "normalized")]
    heads[1].load_state_dict(heads[0].state_dict())
    targets = 30.0 + 6.0 * th.randn(64)
    features = th.randn(64, 5)
    for head in heads:
        head.update(targets)
    with th.no_grad():
        assert th.equal(heads[0](features), heads[1](features))
    for head in heads:
        ((head(features).flatten() - targets) ** 2).mean().backward()
    std = heads[0].std
    assert std > 5.0
    # The gradient of the same loss with the value and the target both divided by std (PopArt's units): std**2 smaller.
    for returns, normalized in zip(heads[0].parameters(), heads[1].parameters()):
        assert th.allclose(normalized.grad, returns.grad / std**2, rtol=1e-5)
    expected = th.autograd.grad(
        ((heads[1].linear(features).flatten() - (targets - heads[1].mean) / std) ** 2).mean(), heads[1].linear.weight
    )[0]
    assert th.allclose(heads[1].linear.weight.grad, expected, rtol=1e-4)


def test_linear_loss_units_give_the_gradient_of_sb3s_plain_linear_value_head():
    th.manual_seed(1)
    head = NormalizedValueHead(th.nn.Linear(5, 1), rate=1.0, loss_units="linear")
    targets = -120.0 + 40.0 * th.randn(64)
    features = th.randn(64, 5)
    head.update(targets)
    std = head.std
    assert std > 30.0
    # The plain head with the same outputs: weights std * w, bias std * b + mean, trained on the same loss.
    plain = th.nn.Linear(5, 1)
    with th.no_grad():
        plain.weight.copy_(std * head.linear.weight)
        plain.bias.copy_(std * head.linear.bias + head.mean)
        assert th.allclose(plain(features), head(features), rtol=1e-5, atol=1e-3)
    for module in (head, plain):
        ((module(features).flatten() - targets) ** 2).mean().backward()
    assert th.allclose(head.linear.weight.grad, plain.weight.grad, rtol=1e-4)
    assert th.allclose(head.linear.bias.grad, plain.bias.grad, rtol=1e-4)


@pytest.mark.parametrize("units", ["raw", "", None, 1])
def test_bad_value_loss_units_raise_naming_the_parameter(units):
    with pytest.raises(ValueError, match="value_loss_units"):
        PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(value_loss_units=units), device="cpu")


def test_normalized_value_loss_needs_the_normalized_head():
    with pytest.raises(ValueError, match="value_loss_units='normalized' needs the normalised value head"):
        PPO(PDMPolicy, "CartPole-v1", policy_kwargs=dict(value_loss_units="normalized", value_norm_rate=None), device="cpu")


def test_normalized_value_loss_keeps_outputs_shrinks_the_value_gradient_and_is_saved(tmp_path, monkeypatch):
    models = [_ppo(dict(value_loss_units=units), rollout_buffer_class=PDMRolloutBuffer) for units in ("returns", "normalized")]
    obs = th.as_tensor(models[0].env.reset(), dtype=th.float32)
    with th.no_grad():
        assert th.equal(models[0].policy.predict_values(obs), models[1].policy.predict_values(obs))
    clip = th.nn.utils.clip_grad_norm_
    seen: dict[int, list[float]] = {0: [], 1: []}
    for index, model in enumerate(models):

        def record(parameters, max_norm, *args, model=model, index=index, **kwargs):
            # The value head's gradient as the algorithm's clip sees it, before clipping.
            seen[index].append(th.linalg.vector_norm(model.policy.value_net.linear.weight.grad).item())
            return clip(parameters, max_norm, *args, **kwargs)

        monkeypatch.setattr(th.nn.utils, "clip_grad_norm_", record)
        model.learn(128)
    monkeypatch.undo()
    norms = [sum(values) / len(values) for values in seen.values()]
    head = models[1].policy.value_net
    assert head.loss_units == "normalized" and head.n_updates == 2 * 3 * 2 and head.std > 1.0
    # CartPole's returns spread by more than 1, so the value head's gradient in normalised units is the smaller one.
    assert norms[1] < norms[0]
    assert all(th.isfinite(p).all() for p in models[1].policy.parameters())
    models[1].save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    assert loaded.policy.value_loss_units == "normalized" and loaded.policy.value_net.loss_units == "normalized"
    with th.no_grad():
        assert th.equal(loaded.policy.predict_values(obs), models[1].policy.predict_values(obs))
