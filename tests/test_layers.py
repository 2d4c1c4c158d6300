import pytest
import torch as th

from sb3_pdm import PDMConfig, PDMConv2d, PDMLinear
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
        (dict(feature_scale=0.0), "feature_scale"),
        (dict(guidance_coef=-1.0), "guidance_coef"),
        (dict(local_lr=0.0), "local_lr"),
        (dict(local_lr=-1e-3), "local_lr"),
        (dict(local_lr="lin_"), "local_lr"),
        (dict(local_lr="lin_-1e-3"), "local_lr"),
        (dict(local_lr="cos_1e-3"), "local_lr"),
        (dict(local_lr="3e-4"), "local_lr"),
        (dict(local_optimizer="lbfgs2"), "local_optimizer"),
        (dict(local_optimizer_kwargs=[("lr", 1)]), "local_optimizer_kwargs"),
        (dict(feature_scale=float("nan")), "feature_scale"),
        (dict(guidance_coef=float("inf")), "guidance_coef"),
        (dict(local_steps=0), "local_steps"),
        (dict(max_pair_samples=1), "max_pair_samples"),
        (dict(local_epochs=0), "local_epochs"),
        (dict(local_epochs=1.5), "local_epochs"),
        (dict(local_epochs=True), "local_epochs"),
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


def test_optimizer_step_hooks_are_honoured():
    layer = _steps(PDMLinear(5, 7), n_steps=2)
    seen = []
    layer.optimizer.register_step_post_hook(lambda optimizer, args, kwargs: seen.append(optimizer))
    _steps(layer, n_steps=3)
    assert len(seen) == 3


@pytest.mark.parametrize("activation", ["tanh", "relu", "identity", "gelu", "leaky_relu"])
def test_dense_layer_applies_its_activation_module(activation):
    layer = PDMLinear(6, 16, activation_fn=activation)
    x = make_batch()
    with th.no_grad():
        expected = layer.activation(layer.linear(x))
        assert th.equal(layer.transform(x), expected)
        assert th.equal(layer(x), expected)


@pytest.mark.parametrize(
    "config",
    [
        PDMConfig(local_optimizer="sgd"),
        PDMConfig(local_optimizer=th.optim.AdamW),
        PDMConfig(local_optimizer_kwargs=dict(amsgrad=True)),
    ],
)
def test_other_optimizers_step(config):
    layer = _steps(PDMLinear(5, 7, config=config))
    assert layer._n_updates == 6


def test_local_gradients_are_cleared_after_each_step():
    """The algorithm clips the norm of every gradient in the policy: a local step must leave none behind."""
    layer = _steps(PDMLinear(5, 7), n_steps=2)
    assert all(parameter.grad is None for parameter in layer.parameters())


@pytest.mark.parametrize("distance", ["euclidean", "sqeuclidean", "cosine"])
def test_guidance_distances_follow_the_layers_distance(distance):
    """Squared euclidean layers take squared guidance distances; euclidean and cosine layers euclidean ones."""
    from sb3_pdm.objective import target_distances

    layer = PDMLinear(5, 7, config=PDMConfig(distance=distance))
    x, guidance = th.randn(24, 5), th.randn(24, 2)
    expected_guidance = {"euclidean": "euclidean", "sqeuclidean": "sqeuclidean", "cosine": "euclidean"}[distance]
    expected = target_distances(
        pairwise_distances(x, distance), pairwise_distances(guidance, expected_guidance), 1.0, layer.target_scale
    )
    assert th.allclose(layer._targets(x, guidance), expected)


def test_the_package_uses_public_torch_apis_only():
    """Private torch APIs (``torch._foo``, ``Tensor._version``, ``Conv2d._conv_forward``) break across torch releases."""
    import pathlib
    import re

    import sb3_pdm

    private = re.compile(r"\b(th|torch|F)\._[a-z]|\._version\b|\._conv_forward\b|\._foreach_")
    offenders = [
        f"{path.name}:{number}"
        for path in pathlib.Path(sb3_pdm.__file__).parent.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert offenders == []


def test_adam_without_a_fused_kernel_falls_back_to_the_default_implementation(monkeypatch):
    class NoFusedAdam(th.optim.Adam):
        def __init__(self, params, fused=None, **kwargs):
            if fused:
                raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
            super().__init__(params, **kwargs)

    import sb3_pdm.config as config_module

    monkeypatch.setattr(th.optim, "Adam", NoFusedAdam)
    monkeypatch.setitem(config_module.OPTIMIZERS, "adam", NoFusedAdam)
    layer = _steps(PDMLinear(5, 7))
    assert type(layer.optimizer) is NoFusedAdam and not layer.optimizer.defaults.get("fused")
    assert layer._n_updates == 6
