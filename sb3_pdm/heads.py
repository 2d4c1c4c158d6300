"""The normalised value head of PDM policies (PopArt's output statistics, without its loss units)."""

import torch as th
import torch.nn.functional as F
from torch import nn


def check_value_norm_rate(rate: float) -> None:
    """Raise a ``ValueError`` naming ``value_norm_rate`` unless ``0 < rate <= 1``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise ValueError(f"value_norm_rate must be a number in (0, 1] (or None for a plain head), got {rate!r}")


class NormalizedValueHead(nn.Module):
    """
    Linear value head that predicts returns in units of running statistics of the returns, as in PopArt
    (van Hasselt et al., 2016, *Learning values across many orders of magnitude*): ``V(h) = std * (w h + b) + mean``.

    ``mean`` and ``std`` are debiased exponential moving averages of the value targets seen in training
    (:meth:`update`), and each update rescales ``w`` and ``b`` so that the head's outputs are unchanged by it. The
    algorithm's optimizer trains ``w`` and ``b`` on its own value loss, in the units of the returns.

    Why a PDM policy needs it: a PDM trunk's features have a fixed scale (``feature_scale``), so a plain linear head
    must grow its weights to the scale of the returns (tens on CartPole, hundreds on LunarLander) at the head's
    learning rate; a backprop trunk grows its own weights in every layer instead (``docs/method.md``).

    Nothing non-finite is written into the statistics or the weights: an update whose statistics or rescaled weights
    would not be finite (returns too large for the dtype) is skipped, and so is a non-finite gradient of ``w`` or ``b``
    (zeroed before the algorithm's optimizer sees it). Both are counted in :meth:`pop_skipped`.

    :param linear: The head's linear map (features to one output), initialised by the policy.
    :param rate: Weight ``0 < rate <= 1`` of each update in the moving averages.
    """

    def __init__(self, linear: nn.Linear, rate: float) -> None:
        super().__init__()
        check_value_norm_rate(rate)
        if not isinstance(linear, nn.Linear) or linear.out_features != 1:
            raise ValueError(f"NormalizedValueHead needs an nn.Linear with one output, got {linear!r}")
        self.linear = linear
        self.rate = float(rate)
        # Raw moving averages of the targets and of their squares, the number of updates (for debiasing), and the
        # debiased statistics the head uses (0 and 1 before the first update).
        self.register_buffer("first_moment", th.zeros(()))
        self.register_buffer("second_moment", th.zeros(()))
        self.register_buffer("n_updates", th.zeros((), dtype=th.long))
        self.register_buffer("mean", th.zeros(()))
        self.register_buffer("std", th.ones(()))
        self._n_skipped: th.Tensor | int = 0
        for parameter in linear.parameters():
            parameter.register_hook(self._finite_gradient)

    def _finite_gradient(self, grad: th.Tensor) -> th.Tensor:
        """The gradient of ``w`` or ``b``, or zeros (counted) where it is not finite; no host sync."""
        bad = ~th.isfinite(grad).all()
        self._n_skipped = self._n_skipped + bad
        return th.where(bad, th.zeros_like(grad), grad)

    @th.no_grad()
    def update(self, targets: th.Tensor) -> None:
        """Move the statistics towards a batch of value targets, keeping the head's outputs unchanged."""
        targets = targets.detach().to(self.mean.dtype).flatten()
        if targets.numel() == 0:
            return
        first = (1.0 - self.rate) * self.first_moment + self.rate * targets.mean()
        second = (1.0 - self.rate) * self.second_moment + self.rate * (targets**2).mean()
        debias = 1.0 - (1.0 - self.rate) ** (self.n_updates + 1)
        new_mean = first / debias
        new_std = (second / debias - new_mean**2).clamp_min(1e-8).sqrt().clamp_min(1e-4)
        weight = self.linear.weight * (self.std / new_std)
        bias = (self.linear.bias * self.std + (self.mean - new_mean)) / new_std
        # One host read per training minibatch: the new statistics and weights, all finite or none written.
        if not th.isfinite(th.cat([second.view(1), new_mean.view(1), new_std.view(1), weight.flatten(), bias])).all():
            self._n_skipped = self._n_skipped + 1
            return
        self.first_moment.copy_(first)
        self.second_moment.copy_(second)
        self.n_updates += 1
        self.linear.weight.copy_(weight)
        self.linear.bias.copy_(bias)
        self.mean.copy_(new_mean)
        self.std.copy_(new_std)

    def pop_skipped(self) -> int:
        """Statistics updates and gradients skipped as non-finite since the last call."""
        count, self._n_skipped = int(self._n_skipped), 0
        return count

    def forward(self, features: th.Tensor) -> th.Tensor:
        linear = self.linear
        return F.linear(features, linear.weight, linear.bias) * self.std + self.mean

    @property
    def in_features(self) -> int:
        """Size of the features read by the head (as ``nn.Linear``)."""
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        """Size of the head's output (as ``nn.Linear``)."""
        return self.linear.out_features
