import pytest
import torch as th
from torch import nn

from sb3_pdm import PDMConfig, PDMConv2d, PDMLinear
from sb3_pdm.layers import distances_of, keep_distances
from sb3_pdm.objective import pairwise_distances
from tests.conftest import all_equal, pdm_params


def make_batch(n=64, dim=6, seed=0):
    return th.randn(n, dim, generator=th.Generator().manual_seed(seed))


def params_of(layer):
    return [p.detach().clone() for p in layer.parameters()]


def test_local_loss_decreases_on_fixed_batch():
    th.manual_seed(0)
    layer = PDMLinear(6, 32, config=PDMConfig(local_lr=1e-2, guidance_coef=0.0))
    x = make_batch()
    losses = []
    for _ in range(100):
        layer(x)
        losses.append(layer.pop_diagnostics()["loss"])
    assert losses[-1] < 0.5 * losses[0]


def test_output_is_detached_and_params_only_move_in_train_mode_with_grad():
    layer = PDMLinear(6, 16)
    x = make_batch().requires_grad_(True)
    before = params_of(layer)
    layer.eval()
    out = layer(x)
    assert not out.requires_grad
    assert all(th.equal(a, b) for a, b in zip(before, params_of(layer)))
    layer.train()
    with th.no_grad():
        layer(x)
    assert all(th.equal(a, b) for a, b in zip(before, params_of(layer)))
    out = layer(x)
    assert not out.requires_grad and x.grad is None
    assert not any(th.equal(a, b) for a, b in zip(before, params_of(layer)))
    assert all(p.grad is None for p in layer.parameters())


def test_guidance_changes_the_update():
    x = make_batch()
    signal = th.randn(64, 1)
    layers = []
    for guided in (False, True):
        th.manual_seed(0)
        layer = PDMLinear(6, 16, config=PDMConfig(guidance_coef=1.0))
        layer.set_guidance(signal if guided else None)
        layer(x)
        layers.append(params_of(layer))
    assert not th.equal(layers[0][0], layers[1][0])


@pytest.mark.parametrize("bad", ["nan", "inf", "single"])
def test_bad_batches_skip_the_step_and_keep_params_finite(bad):
    layer = PDMLinear(6, 16)
    x = make_batch()
    if bad == "nan":
        x[3, 2] = float("nan")
    elif bad == "inf":
        x[0, 0] = float("inf")
    else:
        x = x[:1]
    before = params_of(layer)
    layer(x)
    assert all(th.equal(a, b) for a, b in zip(before, params_of(layer)))
    assert all(th.isfinite(p).all() for p in layer.parameters())
    assert layer.pop_diagnostics()["skipped"] == 1


def test_pair_bound_keeps_pair_matrix_small():
    layer = PDMLinear(6, 16, config=PDMConfig(max_pair_samples=32))
    seen = []
    original = pairwise_distances

    def spy(x, distance):
        seen.append(x.shape[0])
        return original(x, distance)

    import sb3_pdm.layers as layers_module

    layers_module.pairwise_distances, saved = spy, layers_module.pairwise_distances
    try:
        out = layer(make_batch(n=1000))
    finally:
        layers_module.pairwise_distances = saved
    assert out.shape == (1000, 16)
    assert seen and max(seen) == 32


@pytest.mark.parametrize("distance", ["euclidean", "sqeuclidean", "cosine"])
def test_distances_are_symmetric_with_zero_diagonal(distance):
    x = make_batch(n=10)
    d = pairwise_distances(x, distance)
    assert d.shape == (10, 10)
    assert th.allclose(d, d.T, atol=1e-5)
    assert d.diagonal().abs().max() < 1e-3
    if distance == "euclidean":
        assert th.allclose(d[0, 1], (x[0] - x[1]).norm(), atol=1e-4)


def test_conv_layer_learns_locally():
    layer = PDMConv2d(3, 8, kernel_size=3, stride=2)
    x = th.rand(16, 3, 12, 12)
    before = params_of(layer)
    out = layer(x)
    assert out.shape == (16, 8, 5, 5) and not out.requires_grad
    assert not th.equal(before[0], params_of(layer)[0])


def test_extra_state_restores_local_optimizer():
    layer = PDMLinear(6, 16)
    layer(make_batch())
    clone = PDMLinear(6, 16)
    clone.load_state_dict(layer.state_dict())
    state, cloned = layer.optimizer.state_dict()["state"], clone.optimizer.state_dict()["state"]
    assert state.keys() == cloned.keys() and len(state) == 2
    for key in state:
        assert th.equal(state[key]["exp_avg"], cloned[key]["exp_avg"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(distance="manhattan"), "distance"),
        (dict(normalization="max"), "normalization"),
        (dict(feature_scale=0.0), "feature_scale"),
        (dict(guidance_coef=-1.0), "guidance_coef"),
        (dict(local_lr=0.0), "local_lr"),
        (dict(local_lr=-1e-3), "local_lr"),
        (dict(local_lr="lin_"), "local_lr"),
        (dict(local_lr="lin_-1e-3"), "local_lr"),
        (dict(local_lr="cos_1e-3"), "local_lr"),
        (dict(local_lr="3e-4"), "local_lr"),
        (dict(local_optimizer="lbfgs2"), "local_optimizer"),
        (dict(local_steps=0), "local_steps"),
        (dict(max_pair_samples=1), "max_pair_samples"),
        (dict(local_epochs=0), "local_epochs"),
        (dict(local_epochs=1.5), "local_epochs"),
        (dict(local_epochs=True), "local_epochs"),
        (dict(guidance_gate="yes"), "guidance_gate"),
        (dict(guidance_gate=True, guidance_coef=0.0), "guidance_gate"),
        (dict(decorrelation_coef=-0.1), "decorrelation_coef"),
        (dict(decorrelation_coef=float("inf")), "decorrelation_coef"),
        (dict(decorrelation_coef="1"), "decorrelation_coef"),
        (dict(input_norm_rate=0.0), "input_norm_rate"),
        (dict(input_norm_rate=1.5), "input_norm_rate"),
        (dict(input_norm_rate=True), "input_norm_rate"),
        (dict(input_norm_rate="0.01"), "input_norm_rate"),
        (dict(initial_feature_target=1), "initial_feature_target"),
        (dict(local_learning="no"), "local_learning"),
        (dict(max_feature_move=0.0), "max_feature_move"),
        (dict(max_feature_move=-0.1), "max_feature_move"),
        (dict(max_feature_move=float("inf")), "max_feature_move"),
        (dict(max_feature_move=True), "max_feature_move"),
        (dict(max_feature_move="0.1"), "max_feature_move"),
    ],
)
def test_bad_config_raises_naming_the_parameter(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        PDMConfig(**kwargs)


def test_bad_activation_and_sizes_raise():
    with pytest.raises(ValueError, match="activation_fn"):
        PDMLinear(4, 4, activation_fn="sigmoidish")
    with pytest.raises(TypeError, match="activation_fn"):
        PDMLinear(4, 4, activation_fn=3)


def test_target_distances_divide_by_the_given_means():
    from sb3_pdm.objective import off_diagonal_mean, target_distances

    d_in = pairwise_distances(make_batch(), "euclidean")
    batch_mean = off_diagonal_mean(d_in)
    assert off_diagonal_mean(target_distances(d_in, None, 0.0, "mean", 2.0)) == pytest.approx(2.0, rel=1e-4)
    # Divided by a running mean twice the batch's: the target's mean is half the target scale.
    running = target_distances(d_in, None, 0.0, "running", 2.0, input_mean=2 * batch_mean)
    assert off_diagonal_mean(running) == pytest.approx(1.0, rel=1e-4)


def test_running_normalization_keeps_the_relative_spread_of_a_batch():
    """After batches of unit spread, a batch at half the spread gets targets at about half the scale, not the full."""
    layer = PDMLinear(6, 16, config=PDMConfig(normalization="running", guidance_coef=0.0))
    for seed in range(300):
        layer(make_batch(seed=seed))
    narrow = 0.5 * make_batch(seed=1000)
    d_in = pairwise_distances(narrow, "euclidean")
    running_means = layer._running_means(d_in, None)
    from sb3_pdm.objective import off_diagonal_mean, target_distances

    targets = target_distances(d_in, None, 0.0, "running", layer.target_scale, *running_means)
    assert off_diagonal_mean(targets) == pytest.approx(0.5 * layer.target_scale, rel=0.1)
    # The running means travel with the state dict (model.save), so training resumes with them.
    clone = PDMLinear(6, 16, config=PDMConfig(normalization="running", guidance_coef=0.0))
    clone.load_state_dict(layer.state_dict())
    assert th.equal(clone._distance_means, layer._distance_means)
    assert th.equal(clone._distance_weights, layer._distance_weights)


def test_state_dict_without_running_means_loads():
    """Saves of versions before normalization="running" hold only the optimizer in the extra state."""
    layer = PDMLinear(6, 16)
    layer(make_batch())
    state = layer.state_dict()
    state["_extra_state"] = {"optimizer": state["_extra_state"]["optimizer"]}
    clone = PDMLinear(6, 16)
    clone.load_state_dict(state)
    assert th.equal(clone._distance_weights, th.zeros(2))


def _gated_lr(layer, spread, seed=0):
    layer.set_guidance(th.randn(64, 1, generator=th.Generator().manual_seed(seed)), spread)
    layer(make_batch(seed=seed))
    return layer.optimizer.param_groups[0]["lr"]


def test_guidance_gate_scales_the_rate_by_the_relative_spread():
    """After steps at spread 1, a batch at a quarter of it steps at a quarter of the rate; a wider one at the full."""
    layer = PDMLinear(6, 16, config=PDMConfig(guidance_gate=True, local_lr=1e-3))
    assert all(_gated_lr(layer, 1.0, seed) == pytest.approx(1e-3) for seed in range(50))
    # The debiased average includes the batch itself (weight 1; the earlier ones 0.999^k).
    average = (sum(0.999**k for k in range(1, 51)) + 0.25) / sum(0.999**k for k in range(51))
    assert _gated_lr(layer, 0.25, 50) == pytest.approx(1e-3 * 0.25 / average, rel=1e-6)
    assert _gated_lr(layer, 4.0, 51) == pytest.approx(1e-3)
    assert _gated_lr(layer, None, 52) == pytest.approx(1e-3)  # no spread: the full rate
    layer.pop_diagnostics()
    _gated_lr(layer, 0.5, 53)
    assert layer.pop_diagnostics()["gate"] == pytest.approx(0.5, rel=5e-2)
    # The average, the gate and the rate travel with the state dict (model.save).
    clone = PDMLinear(6, 16, config=PDMConfig(guidance_gate=True, local_lr=1e-3))
    clone.load_state_dict(layer.state_dict())
    assert clone._spread_average == layer._spread_average and clone._gate == layer._gate
    assert clone.optimizer.param_groups[0]["lr"] == layer.optimizer.param_groups[0]["lr"]
    assert _gated_lr(clone, 0.25, 54) == _gated_lr(layer, 0.25, 54)


def test_guidance_gate_follows_the_schedule_and_is_off_by_default():
    layer = PDMLinear(6, 16, config=PDMConfig(guidance_gate=True, local_lr="lin_1e-3"))
    layer.set_progress(1.0)
    _gated_lr(layer, 1.0)
    layer.set_progress(0.5)
    # Debiased moving average of the spreads 1 and 0.5 (weights 0.999 and 1): the gate is 0.5 over it.
    assert _gated_lr(layer, 0.5, 1) == pytest.approx(0.5e-3 * 0.5 / (1.499 / 1.999), rel=1e-6)
    plain = PDMLinear(6, 16, config=PDMConfig(local_lr=1e-3))
    _gated_lr(plain, 1.0)
    assert _gated_lr(plain, 0.01, 1) == 1e-3 and "gate" not in plain.pop_diagnostics()


def test_decorrelation_spreads_the_output_variance_over_the_units():
    """A 4-D input through 32 tanh units: distance matching alone keeps most variance in a few directions."""
    generator = th.Generator().manual_seed(0)
    inputs = th.randn(128, 4, generator=generator) * th.tensor([0.1, 0.3, 0.05, 0.4])

    def top_share(coef: float) -> float:
        th.manual_seed(0)
        layer = PDMLinear(4, 32, config=PDMConfig(decorrelation_coef=coef, local_lr=1e-2, guidance_coef=0.0))
        layer.train()
        for _ in range(300):
            layer(inputs)
        with th.no_grad():
            variances = th.linalg.svdvals(layer(inputs) - layer(inputs).mean(0)) ** 2
        return float(variances[0] / variances.sum())

    plain, spread = top_share(0.0), top_share(1.0)
    assert spread < plain - 0.1, (plain, spread)


def test_input_norm_rate_weighs_every_input_feature_the_same_in_the_target():
    """An input feature 100 times smaller than the others: raw, it is lost in the input distances; standardised, not."""
    scales = th.tensor([1.0, 1.0, 0.01, 1.0])
    layer = PDMLinear(4, 16, config=PDMConfig(input_norm_rate=0.05, guidance_coef=0.0))
    for seed in range(200):
        layer(make_batch(dim=4, seed=seed) * scales)
    batch = make_batch(dim=4, seed=1000) * scales
    standardized = layer._standardized_input(batch)
    assert standardized.std(dim=0) == pytest.approx(th.ones(4), rel=0.25)
    # Pairs that differ in the small feature only: 1 / 100 of the others' distance raw, about the same standardised.
    pair = th.zeros(2, 4)
    pair[1, 2] = 0.01
    assert pairwise_distances(layer._standardized_input(pair), "euclidean")[0, 1] == pytest.approx(1.0, rel=0.25)
    # The moments travel with the state dict (model.save); older saves without them load and start afresh.
    clone = PDMLinear(4, 16, config=PDMConfig(input_norm_rate=0.05, guidance_coef=0.0))
    clone.load_state_dict(layer.state_dict())
    assert th.equal(clone._input_moments, layer._input_moments) and th.equal(clone._input_weight, layer._input_weight)
    state = layer.state_dict()
    state["_extra_state"] = {"optimizer": state["_extra_state"]["optimizer"]}
    fresh = PDMLinear(4, 16, config=PDMConfig(input_norm_rate=0.05, guidance_coef=0.0))
    fresh.load_state_dict(state)
    assert fresh._input_moments is None


def test_input_norm_rate_changes_the_step_and_a_bad_batch_leaves_the_moments_unchanged():
    steps = []
    for rate in (None, 0.01):
        th.manual_seed(0)
        layer = PDMLinear(4, 16, config=PDMConfig(input_norm_rate=rate, guidance_coef=0.0))
        layer(make_batch(dim=4) * th.tensor([1.0, 1.0, 0.01, 1.0]))
        steps.append(params_of(layer))
    assert not th.equal(steps[0][0], steps[1][0])
    moments, weight = layer._input_moments.clone(), layer._input_weight.clone()
    bad = make_batch(dim=4, seed=1)
    bad[0, 0] = float("nan")
    before = params_of(layer)
    layer(bad)
    assert th.equal(layer._input_moments, moments) and th.equal(layer._input_weight, weight)
    assert all(th.equal(a, b) for a, b in zip(before, params_of(layer)))
    layer(make_batch(dim=4, seed=2))
    assert not th.equal(layer._input_moments, moments)


def test_initial_feature_target_keeps_the_initial_layers_geometry_without_guidance():
    """Raw input distances pull a tanh layer towards an affine map of its input; the initial-feature target does not."""
    inputs = make_batch(n=128, dim=4) * 2.0

    def distance_correlation(initial_feature_target: bool) -> float:
        th.manual_seed(0)
        layer = PDMLinear(
            4, 32, config=PDMConfig(initial_feature_target=initial_feature_target, guidance_coef=0.0, local_lr=1e-2)
        )
        with th.no_grad():  # as a policy's own initialisation would, after the layer is built
            nn.init.orthogonal_(layer.linear.weight)
        layer.train()
        with th.no_grad():
            initial = pairwise_distances(layer.transform(inputs), "euclidean")
        for _ in range(300):
            layer(inputs)
        with th.no_grad():
            final = pairwise_distances(layer.transform(inputs), "euclidean")
        pairs = ~th.eye(len(inputs), dtype=th.bool)
        return float(th.corrcoef(th.stack([initial[pairs], final[pairs]]))[0, 1])

    kept, raw = distance_correlation(True), distance_correlation(False)
    assert kept > 0.99 and raw < kept - 0.02, (kept, raw)


def test_max_feature_move_holds_the_layer_once_its_output_moved_on_the_rollout():
    th.manual_seed(0)
    layer = PDMLinear(4, 8, config=PDMConfig(local_lr=1e-2, guidance_coef=0.0, max_feature_move=0.05))
    x = th.randn(32, 4)
    layer.train()
    with th.no_grad():
        start = layer.transform(x)
    layer.begin_rollout()
    taken = 0
    for _ in range(200):
        before = pdm_params(layer)
        layer(x)
        moved = not all_equal(before, pdm_params(layer))
        if not moved:
            break
        taken += 1
    # Some steps, then none: the held step leaves the parameters as they were, past the limit.
    assert 1 < taken < 200
    with th.no_grad():
        output = layer.transform(x)
    move = ((output - start).square().mean(0).sqrt() / start.std(0)).median()
    assert move > 0.05
    stats = layer.pop_diagnostics()
    assert stats["updates"] == taken and stats["held"] == 1
    # A new rollout measures from the current parameters: the layer steps again.
    layer.begin_rollout()
    before = pdm_params(layer)
    layer(x)
    assert not all_equal(before, pdm_params(layer))


def test_max_feature_move_checks_each_step_and_does_not_latch():
    """A held layer steps again, on the same rollout, once a minibatch measures a move under the limit."""
    th.manual_seed(0)
    layer = PDMLinear(4, 8, config=PDMConfig(local_lr=1e-2, guidance_coef=0.0, max_feature_move=0.05))
    x = th.randn(32, 4)
    layer.train()
    layer.begin_rollout()
    for _ in range(200):
        layer(x)
    assert layer.pop_diagnostics()["held"] > 0
    # Back at the rollout's start (no new rollout announced), the move measures 0: the next step happens.
    with th.no_grad():
        for parameter, start in zip(layer.parameters(), layer._rollout_parameters):
            parameter.copy_(start)
    before = pdm_params(layer)
    layer(x)
    assert not all_equal(before, pdm_params(layer))
    assert layer.pop_diagnostics()["held"] == 0


def test_max_feature_move_does_not_apply_without_rollouts():
    th.manual_seed(0)
    x = th.randn(32, 4)
    configs = (
        PDMConfig(local_lr=1e-2, guidance_coef=0.0, max_feature_move=1e-6),
        PDMConfig(local_lr=1e-2),  # the default limit, 0.1
        PDMConfig(local_lr=1e-2, max_feature_move=None),
    )
    for config in configs:
        layer = PDMLinear(4, 8, config=config)
        layer.train()
        for _ in range(20):
            layer(x)
        stats = layer.pop_diagnostics()
        assert stats["updates"] == 20 and stats.get("held", 0) == 0
        assert ("held" in stats) == (config.max_feature_move is not None)


def _steps(layer, n_steps=6):
    th.manual_seed(1)
    layer.train()
    for _ in range(n_steps):
        layer.set_guidance(th.randn(24, 2))
        layer(th.randn(24, 5))
    return layer


@pytest.mark.parametrize(
    "optimizer_kwargs",
    [{}, dict(weight_decay=0.01, betas=(0.8, 0.99), eps=1e-6), dict(maximize=True)],
)
def test_direct_fused_adam_step_is_optimizer_step_bit_for_bit(monkeypatch, optimizer_kwargs):
    import sb3_pdm.layers as layers_module

    config = PDMConfig(local_optimizer_kwargs=optimizer_kwargs)
    th.manual_seed(0)
    direct, reference = PDMLinear(5, 7, config=config), PDMLinear(5, 7, config=config)
    reference.load_state_dict(direct.state_dict())
    calls = []
    arguments = layers_module._fused_adam_arguments
    monkeypatch.setattr(layers_module, "_fused_adam_arguments", lambda opt: calls.append(arguments(opt)) or calls[-1])
    _steps(direct)
    # All steps but the first (which creates the optimizer's state) took the direct call.
    assert calls[0] is None and all(call is not None for call in calls[1:]) and len(calls) == 6
    monkeypatch.setattr(layers_module, "_fused_adam_arguments", lambda opt: None)
    _steps(reference)
    assert all_equal(pdm_params(direct), pdm_params(reference))
    for a, b in zip(direct.optimizer.state.values(), reference.optimizer.state.values()):
        assert all(th.equal(a[key], b[key]) for key in ("exp_avg", "exp_avg_sq", "step"))


@pytest.mark.parametrize(
    "config",
    [
        PDMConfig(local_optimizer="sgd"),
        PDMConfig(local_optimizer=th.optim.AdamW),
        PDMConfig(local_optimizer_kwargs=dict(fused=False)),
        PDMConfig(local_optimizer_kwargs=dict(amsgrad=True)),
    ],
)
def test_other_optimizers_and_options_step_through_the_optimizer(config):
    from sb3_pdm.layers import _fused_adam_arguments

    layer = _steps(PDMLinear(5, 7, config=config))
    assert layer._n_updates == 6 and _fused_adam_arguments(layer.optimizer) is None


def test_optimizer_step_hooks_are_honoured():
    layer = _steps(PDMLinear(5, 7), n_steps=2)
    seen = []
    layer.optimizer.register_step_post_hook(lambda optimizer, args, kwargs: seen.append(optimizer))
    _steps(layer, n_steps=3)
    assert len(seen) == 3


def test_a_layer_passes_its_output_distances_to_the_next_and_the_steps_are_unchanged():
    """
    After a local step on the whole batch, a layer's output carries the pairwise distances its loss computed; the next
    layer's target reads them instead of computing them again, and the layers of a trunk compute the distances of their
    shared guidance once. Both steps are the same, bit for bit, as those of layers given plain copies of their inputs.
    """
    th.manual_seed(0)
    first, second = PDMLinear(6, 16), PDMLinear(16, 16)
    th.manual_seed(0)
    first_copy, second_copy = PDMLinear(6, 16), PDMLinear(16, 16)
    x, guidance = make_batch(n=32), make_batch(n=32, dim=2, seed=1)
    for layer in (first, second, first_copy, second_copy):
        layer.train()
    first.set_guidance(guidance)
    second.set_guidance(guidance)
    for _ in range(3):
        output = first(x)
        assert th.equal(distances_of(output, "euclidean"), pairwise_distances(output, "euclidean"))
        second(output)
        # The copies get fresh tensors, which carry no distances.
        first_copy.set_guidance(guidance.clone())
        second_copy.set_guidance(guidance.clone())
        second_copy(first_copy(x.clone()).clone())
    assert all(th.equal(a, b) for a, b in zip(params_of(first), params_of(first_copy)))
    assert all(th.equal(a, b) for a, b in zip(params_of(second), params_of(second_copy)))
    assert not all(th.equal(a, b) for a, b in zip(params_of(second), params_of(PDMLinear(16, 16))))


def test_carried_distances_are_dropped_when_the_tensor_changes_or_another_distance_is_asked():
    x = make_batch(n=8)
    fake = th.zeros(8, 8)
    keep_distances(x, "euclidean", fake)
    assert distances_of(x, "euclidean") is fake
    assert th.equal(distances_of(x, "sqeuclidean"), pairwise_distances(x, "sqeuclidean"))
    keep_distances(x, "euclidean", fake)
    x.mul_(2.0)
    assert th.equal(distances_of(x, "euclidean"), pairwise_distances(x, "euclidean"))
    with th.inference_mode():
        frozen = make_batch(n=8)
    keep_distances(frozen, "euclidean", fake)
    assert th.equal(distances_of(frozen, "euclidean"), pairwise_distances(frozen, "euclidean"))


def test_held_or_frozen_layers_pass_no_distances():
    layer = PDMLinear(6, 16, config=PDMConfig(local_learning=False))
    layer.train()
    assert not hasattr(layer(make_batch()), "_pdm_distances")
    layer = PDMLinear(6, 16)
    layer.train()
    assert not hasattr(layer(make_batch(n=1)), "_pdm_distances")  # too small to form pairs: no step


@pytest.mark.parametrize("activation", ["tanh", "relu", "identity", "gelu", "leaky_relu"])
def test_dense_layer_applies_its_activation_module(activation):
    layer = PDMLinear(6, 16, activation_fn=activation)
    x = make_batch()
    with th.no_grad():
        expected = layer.activation(layer.linear(x))
        assert th.equal(layer.transform(x), expected)
        assert th.equal(layer(x), expected)
