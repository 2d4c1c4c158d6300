"""
The local pairwise-distance-matching objective of one PDM layer.

A layer maps a minibatch ``x`` (``B`` samples) to features ``h``. Its local loss compares the pairwise distances
of ``h`` with *target* distances built from the pairwise distances of ``x`` (multi-dimensional scaling) and,
optionally, from the pairwise distances of per-sample reward signals (reward-driven guidance):

.. math::

    t_{ij} = s \\cdot \\frac{\\bar d^{\\,x}_{ij} + \\beta \\, \\bar d^{\\,g}_{ij}}{1 + \\beta},
    \\qquad L = \\operatorname{mean}_{i<j} \\big(d^{\\,h}_{ij} - t_{ij}\\big)^2

where :math:`\\bar d` are distances divided by their mean over the batch, :math:`\\beta` is the guidance coefficient
and :math:`s` the target scale. Only the *target* is normalised: the output distances stay absolute, so the loss
anchors the feature scale (normalising both sides makes the loss scale-invariant and the features collapse,
see ``docs/method.md``).
"""

import math

import torch as th

DISTANCES = ("euclidean", "sqeuclidean", "cosine")
#: Distance between the guidance signals of two samples, per ``distance`` of the layer. Squared euclidean input
#: distances get squared euclidean guidance distances, so that both terms of the target have the same power. Cosine
#: falls back to euclidean: the critic's guidance signal is the 1-D return, whose cosine distance keeps only the sign.
GUIDANCE_DISTANCE = {"euclidean": "euclidean", "sqeuclidean": "sqeuclidean", "cosine": "euclidean"}

# Added under square roots and to denominators so that identical samples give finite gradients.
_EPS = 1e-8


def pairwise_distances(x: th.Tensor, distance: str) -> th.Tensor:
    """
    Distance matrix between all rows of ``x``.

    Uses the Gram matrix, so memory is ``O(B^2)`` and never ``O(B^2 * features)``. The full symmetric matrix is
    cheaper to compute and differentiate than its gathered upper triangle, and gives the same mean. Squared
    distances are clamped at a small epsilon, so the diagonal (and identical samples) contributes about zero, with
    zero gradient, instead of the infinite gradient of the square root at zero.

    :param x: Batch of shape ``(B, ...)``; trailing dimensions are flattened.
    :param distance: One of ``"euclidean"``, ``"sqeuclidean"``, ``"cosine"``.
    :return: Tensor of shape ``(B, B)``.
    """
    x = x.flatten(start_dim=1)
    if distance == "cosine":
        x = x / (x.norm(dim=1, keepdim=True) + _EPS)
        return (1.0 - x @ x.T).fill_diagonal_(0.0).clamp_min(0.0)
    squared = _squared_distances(x)
    if distance == "sqeuclidean":
        return squared.clamp_min(0.0)
    if distance == "euclidean":
        return squared.clamp_min(_EPS).sqrt()
    raise ValueError(f"Unknown distance '{distance}', expected one of {DISTANCES}")


def _squared_distances(x: th.Tensor) -> th.Tensor:
    """Squared euclidean distances between the rows of a 2-D ``x`` by the Gram identity, with a zero diagonal."""
    sq_norms = (x * x).sum(dim=1)
    # The Gram identity leaves rounding noise on the diagonal: zero it (and its gradient) explicitly.
    return th.addmm(sq_norms[:, None] + sq_norms[None, :], x, x.T, alpha=-2.0).fill_diagonal_(0.0)


def off_diagonal_mean(matrix: th.Tensor) -> th.Tensor:
    """Mean over the pairs ``i != j`` of a square matrix whose diagonal is (about) zero."""
    n_samples = matrix.shape[0]
    return matrix.sum() / (n_samples * (n_samples - 1))


def natural_target_scale(distance: str, feature_scale: float, n_features: int) -> float:
    """
    Mean target distance that corresponds to features with per-unit standard deviation ``feature_scale``.

    For independent units of std ``sigma``, the mean squared distance between two samples is ``2 * n * sigma^2``.
    Tying the target scale to the width keeps the per-unit feature scale the same for every layer width.

    :param distance: Distance name.
    :param feature_scale: Desired per-unit standard deviation of the layer's output.
    :param n_features: Number of output units of the layer.
    :return: The mean of the target distances.
    """
    if distance == "euclidean":
        return feature_scale * math.sqrt(2.0 * n_features)
    if distance == "sqeuclidean":
        return 2.0 * n_features * feature_scale**2
    # Cosine distances lie in [0, 2] whatever the feature scale: the target keeps the input's mean.
    return 1.0


def target_distances(
    input_distances: th.Tensor, guidance_distances: th.Tensor | None, guidance_coef: float, target_scale: float
) -> th.Tensor:
    """
    Target distances of a PDM layer: input geometry, optionally mixed with reward-signal geometry, each divided by its
    mean over the batch's pairs, the mix scaled to the mean ``target_scale``.

    :param input_distances: Pairwise distance matrix of the layer's input.
    :param guidance_distances: Pairwise distance matrix of the per-sample guidance signals, or ``None``.
    :param guidance_coef: Weight ``beta >= 0`` of the guidance distances.
    :param target_scale: Mean of the target (:func:`natural_target_scale`), which anchors the feature scale.
    :return: Target distance matrix (no gradient).
    """
    target = input_distances / (off_diagonal_mean(input_distances) + _EPS)
    if guidance_distances is not None and guidance_coef > 0.0:
        guidance = guidance_distances / (off_diagonal_mean(guidance_distances) + _EPS)
        target = (target + guidance_coef * guidance) / (1.0 + guidance_coef)
    return (target * target_scale).detach()


def pdm_loss(output_distances: th.Tensor, targets: th.Tensor) -> th.Tensor:
    """
    Mean squared error between the output's pairwise distances and the target distances, over the pairs.

    :param output_distances: Pairwise distance matrix of the layer's output (with gradient), zero diagonal.
    :param targets: Target distance matrix, zero diagonal.
    :return: Scalar loss.
    """
    return off_diagonal_mean((output_distances - targets) ** 2)


def pdm_loss_and_grad(outputs: th.Tensor, targets: th.Tensor, distance: str) -> tuple[th.Tensor, th.Tensor]:
    """
    The local loss ``pdm_loss(pairwise_distances(outputs, distance), targets)`` and its gradient with respect to
    ``outputs``, without building an autograd graph through the ``B x B`` distance matrix.

    For euclidean distances :math:`d_{ij} = \\lVert h_i - h_j \\rVert` over the :math:`P = B(B-1)` ordered pairs,

    .. math::

        \\frac{\\partial L}{\\partial h_i} = \\frac{4}{P} \\sum_j r_{ij} \\, (h_i - h_j), \\qquad
        r_{ij} = \\frac{d_{ij} - t_{ij}}{d_{ij}},

        \\text{i.e.} \\quad \\nabla_H L = \\frac{4}{P} \\big(\\operatorname{diag}(R \\mathbf{1}) - R\\big) H,

    with :math:`r_{ij} = 0` where the squared distance is below the clamp (as in :func:`pairwise_distances`,
    identical samples pass no gradient). Squared euclidean distances give :math:`\\frac{8}{P}` and
    :math:`r_{ij} = d_{ij} - t_{ij}`. The layer then back-propagates this gradient through its own ``transform``
    only: the same update as autograd through the whole loss, in far fewer operations (``tests/test_objective.py``
    checks both agree). Cosine distances go through autograd.

    :param outputs: Batch of the layer's outputs, shape ``(B, ...)`` (its graph, if any, is not used).
    :param targets: Target distance matrix, zero diagonal.
    :param distance: One of ``"euclidean"``, ``"sqeuclidean"``, ``"cosine"``.
    :return: The scalar loss and its gradient (shaped like ``outputs``), both without gradient.
    """
    h = outputs.detach().flatten(start_dim=1)
    if distance == "cosine":
        with th.enable_grad():
            leaf = h.clone().requires_grad_(True)
            loss = pdm_loss(pairwise_distances(leaf, distance), targets)
            (grad,) = th.autograd.grad(loss, leaf)
        return loss.detach(), grad.view_as(outputs)
    with th.no_grad():
        n_pairs = h.shape[0] * (h.shape[0] - 1)
        squared = _squared_distances(h)
        # In-place and fused operations where they keep the arithmetic: on small batches the cost is per operation.
        if distance == "euclidean":
            distances = squared.clamp_min(_EPS).sqrt_()
            residuals = distances - targets
            weights = (residuals / distances).masked_fill_(squared < _EPS, 0.0)
            coef = 4.0 / n_pairs
        elif distance == "sqeuclidean":
            distances = squared.clamp_min(0.0)
            residuals = distances - targets
            weights = residuals.masked_fill(squared < 0.0, 0.0)
            coef = 8.0 / n_pairs
        else:
            raise ValueError(f"Unknown distance '{distance}', expected one of {DISTANCES}")
        flat = residuals.view(-1)
        loss = th.dot(flat, flat) / n_pairs
        grad = th.addmm(weights.sum(dim=1, keepdim=True) * h, weights, h, beta=coef, alpha=-coef)
    return loss, grad.view_as(outputs)
