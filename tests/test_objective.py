import pytest
import torch as th

from sb3_pdm import PDMConfig, PDMConv2d, PDMLinear
from sb3_pdm.objective import (
    GUIDANCE_DISTANCE,
    pairwise_distances,
    pdm_loss,
    pdm_loss_and_grad,
    target_distances,
)


def autograd_loss_and_grad(outputs, targets, distance):
    leaf = outputs.detach().clone().requires_grad_(True)
    loss = pdm_loss(pairwise_distances(leaf, distance), targets)
    loss.backward()
    return loss.detach(), leaf.grad


@pytest.mark.parametrize("distance", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("shape", [(40, 7), (24, 3, 4, 4)])
def test_closed_form_gradient_matches_autograd(distance, shape):
    generator = th.Generator().manual_seed(0)
    outputs = th.randn(*shape, generator=generator, dtype=th.float64)
    outputs[1] = outputs[0]  # identical samples: the clamped distance passes no gradient
    targets = pairwise_distances(th.randn(shape[0], 5, generator=generator, dtype=th.float64), distance)
    loss, grad = pdm_loss_and_grad(outputs, targets, distance)
    expected_loss, expected_grad = autograd_loss_and_grad(outputs, targets, distance)
    assert grad.shape == outputs.shape and not loss.requires_grad and not grad.requires_grad
    assert th.allclose(loss, expected_loss, rtol=1e-12, atol=0)
    assert th.allclose(grad, expected_grad, rtol=1e-9, atol=1e-12)
    assert grad.abs().max() > 0


def test_closed_form_gradient_rejects_unknown_distance():
    with pytest.raises(ValueError, match="distance"):
        pdm_loss_and_grad(th.randn(4, 2), th.zeros(4, 4), "manhattan")


@pytest.mark.parametrize("distance", ["euclidean", "sqeuclidean", "cosine"])
def test_layer_step_equals_autograd_through_the_whole_loss(distance):
    """The layer's update is the one of autograd through transform, distances and loss (float64, one Adam step)."""
    config = PDMConfig(distance=distance, local_lr=1e-2)
    layer = PDMLinear(6, 16, config=config).double()
    reference = PDMLinear(6, 16, config=config).double()
    reference.load_state_dict(layer.state_dict())
    generator = th.Generator().manual_seed(1)
    x = th.randn(32, 6, generator=generator, dtype=th.float64)
    guidance = th.randn(32, 2, generator=generator, dtype=th.float64)
    initial = [p.detach().clone() for p in layer.parameters()]
    layer.set_guidance(guidance)
    layer(x)

    with th.no_grad():
        targets = target_distances(
            pairwise_distances(x, distance),
            pairwise_distances(guidance, GUIDANCE_DISTANCE[distance]),
            config.guidance_coef,
            reference.target_scale,
        )
    reference.optimizer.zero_grad()
    pdm_loss(pairwise_distances(reference.transform(x), distance), targets).backward()
    reference.optimizer.step()
    for moved, expected in zip(layer.parameters(), reference.parameters()):
        assert th.allclose(moved, expected, rtol=1e-10, atol=1e-12)
    assert not any(th.equal(a, b) for a, b in zip(layer.parameters(), initial))


@pytest.mark.parametrize(
    "activation, closed_form", [("tanh", True), ("relu", True), ("leaky_relu", True), ("identity", True), ("gelu", False)]
)
@pytest.mark.parametrize("n_samples", [32, 48])
def test_dense_layer_gradient_by_hand_equals_autograd(activation, closed_form, n_samples):
    """
    Dense layers compute their parameters' gradients by hand for activations whose derivative is a function of their
    output, and through autograd otherwise: the step is the same either way, with the pair bound (48 samples, 24 form
    the pairs, the same subset for both) and without.
    """
    config = PDMConfig(local_lr=1e-2, max_pair_samples=24 if n_samples > 32 else 128, local_optimizer="sgd")
    layer = PDMLinear(6, 16, activation_fn=activation, config=config).double()
    reference = PDMLinear(6, 16, activation_fn=activation, config=config).double()
    reference.load_state_dict(layer.state_dict())
    assert layer.closed_form_backward is closed_form
    generator = th.Generator().manual_seed(3)
    x = th.randn(n_samples, 6, generator=generator, dtype=th.float64)
    guidance = th.randn(n_samples, 2, generator=generator, dtype=th.float64)
    initial = layer.linear.weight.detach().clone()
    layer.set_guidance(guidance)
    th.manual_seed(0)
    output = layer(x)
    th.manual_seed(0)
    index = th.randperm(n_samples)[: config.max_pair_samples]
    pairs, pair_guidance = x[index], guidance[index]
    with th.no_grad():
        targets = target_distances(
            pairwise_distances(pairs, "euclidean"),
            pairwise_distances(pair_guidance, "euclidean"),
            config.guidance_coef,
            reference.target_scale,
        )
    expected_output = reference.transform(x).detach()
    reference.optimizer.zero_grad()
    pdm_loss(pairwise_distances(reference.transform(pairs), "euclidean"), targets).backward()
    reference.optimizer.step()
    assert th.allclose(output, expected_output, rtol=1e-12, atol=1e-12)
    assert all(p.grad is None for p in layer.parameters())
    for moved, expected in zip(layer.parameters(), reference.parameters()):
        assert th.allclose(moved, expected, rtol=1e-10, atol=1e-12)
    assert not th.equal(layer.linear.weight, initial)


def test_conv_layer_step_equals_autograd_through_the_whole_loss():
    # SGD, not Adam: distances are translation-invariant, so the bias gradient of a ReLU channel active on every sample
    # is 0 up to rounding, and Adam's first step (g / (|g| + eps)) would turn that rounding noise into a step.
    config = PDMConfig(guidance_coef=0.0, local_lr=1e-2, local_optimizer="sgd")
    layer = PDMConv2d(2, 4, kernel_size=3, config=config).double()
    reference = PDMConv2d(2, 4, kernel_size=3, config=config).double()
    reference.load_state_dict(layer.state_dict())
    x = th.rand(12, 2, 6, 6, generator=th.Generator().manual_seed(2), dtype=th.float64)
    layer(x)
    with th.no_grad():
        targets = target_distances(pairwise_distances(x, "euclidean"), None, 0.0, reference.target_scale)
    reference.optimizer.zero_grad()
    pdm_loss(pairwise_distances(reference.transform(x), "euclidean"), targets).backward()
    reference.optimizer.step()
    for moved, expected in zip(layer.parameters(), reference.parameters()):
        assert th.allclose(moved, expected, rtol=1e-10, atol=1e-12)
