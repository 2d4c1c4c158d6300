"""Output heads of PDM policies that differ from SB3's plain linear heads."""

import torch as th
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
    learning rate, which takes thousands of steps; a backprop trunk grows its own weights in every layer instead.
    Measured in ``docs/benchmark.md``.

    :param linear: The head's linear map (features to one output), initialised by the policy.
    :param rate: Weight ``0 < rate <= 1`` of each update in the moving averages.
    """

    def __init__(self, linear: nn.Linear, rate: float) -> None:
        super().__init__()
        check_value_norm_rate(rate)
        self.rate = float(rate)
        if not isinstance(linear, nn.Linear) or linear.out_features != 1:
            raise ValueError(f"NormalizedValueHead needs an nn.Linear with one output, got {linear!r}")
        self.linear = linear
        # Raw moving averages of the targets and of their squares, the number of updates (for debiasing), and the
        # debiased statistics the head uses (0 and 1 before the first update).
        self.register_buffer("first_moment", th.zeros(()))
        self.register_buffer("second_moment", th.zeros(()))
        self.register_buffer("n_updates", th.zeros((), dtype=th.long))
        self.register_buffer("mean", th.zeros(()))
        self.register_buffer("std", th.ones(()))

    @property
    def in_features(self) -> int:
        """Size of the features read by the head (as ``nn.Linear``)."""
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        """One output: the value (as ``nn.Linear``)."""
        return self.linear.out_features

    @th.no_grad()
    def update(self, targets: th.Tensor) -> None:
        """Move the statistics towards a batch of value targets, keeping the head's outputs unchanged."""
        targets = targets.detach().to(self.mean.dtype).flatten()
        if targets.numel() == 0 or not th.isfinite(targets).all():
            return
        self.first_moment.mul_(1.0 - self.rate).add_(self.rate * targets.mean())
        self.second_moment.mul_(1.0 - self.rate).add_(self.rate * (targets**2).mean())
        self.n_updates += 1
        debias = 1.0 - (1.0 - self.rate) ** self.n_updates
        new_mean = self.first_moment / debias
        new_std = (self.second_moment / debias - new_mean**2).clamp_min(1e-8).sqrt().clamp_min(1e-4)
        self.linear.weight.mul_(self.std / new_std)
        self.linear.bias.mul_(self.std).add_(self.mean - new_mean).div_(new_std)
        self.mean.copy_(new_mean)
        self.std.copy_(new_std)

    def forward(self, features: th.Tensor) -> th.Tensor:
        return self.linear(features) * self.std + self.mean
