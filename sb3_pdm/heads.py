"""Output heads of PDM policies that differ from SB3's plain linear heads."""

from collections.abc import Callable

import torch as th
import torch.nn.functional as F
from torch import nn


def check_value_norm_rate(rate: float) -> None:
    """Raise a ``ValueError`` naming ``value_norm_rate`` unless ``0 < rate <= 1``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise ValueError(f"value_norm_rate must be a number in (0, 1] (or None for a plain head), got {rate!r}")


class _RunningMoments(nn.Module):
    """
    Shared by the normalised heads: debiased exponential moving averages of the first two moments of what a head
    normalises (buffers, so a save keeps them), the statistics derived from them, and the ``nn.Linear``-like sizes of
    the head's linear map (``self.linear``, set by the subclass).
    """

    linear: nn.Linear

    def _register_moments(self, shape: tuple[int, ...], rate: float) -> None:
        self.rate = float(rate)
        # Raw moving averages of the values and of their squares, the number of updates (for debiasing), and the
        # debiased statistics the head uses (0 and 1 before the first update).
        self.register_buffer("first_moment", th.zeros(shape))
        self.register_buffer("second_moment", th.zeros(shape))
        self.register_buffer("n_updates", th.zeros((), dtype=th.long))
        self.register_buffer("mean", th.zeros(shape))
        self.register_buffer("std", th.ones(shape))

    def _moved_statistics(
        self, batch_mean: th.Tensor, batch_square_mean: th.Tensor, min_std: float, min_variance: float = 0.0
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Move the moving averages by one batch and return the new debiased mean and std (the variance clamped at
        ``min_variance`` before its root, the std at ``min_std`` after).
        """
        self.first_moment.mul_(1.0 - self.rate).add_(self.rate * batch_mean)
        self.second_moment.mul_(1.0 - self.rate).add_(self.rate * batch_square_mean)
        self.n_updates += 1
        debias = 1.0 - (1.0 - self.rate) ** self.n_updates
        mean = self.first_moment / debias
        return mean, (self.second_moment / debias - mean**2).clamp_min(min_variance).sqrt().clamp_min(min_std)

    @property
    def in_features(self) -> int:
        """Size of the features read by the head (as ``nn.Linear``)."""
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        """Size of the head's output (as ``nn.Linear``)."""
        return self.linear.out_features


#: Power of the returns' running std that divides the value head's gradient, per ``value_loss_units``.
_GRADIENT_STD_POWER = {"returns": 0, "linear": 1, "normalized": 2}

#: Units in which a :class:`NormalizedValueHead` takes the value loss's gradient (``value_loss_units``).
VALUE_LOSS_UNITS = tuple(_GRADIENT_STD_POWER)


def check_value_loss_units(units: str) -> None:
    """Raise a ``ValueError`` naming ``value_loss_units`` unless it is one of :data:`VALUE_LOSS_UNITS`."""
    if units not in VALUE_LOSS_UNITS:
        raise ValueError(f"value_loss_units must be one of {', '.join(map(repr, VALUE_LOSS_UNITS))}, got {units!r}")


class _ScaleGradient(th.autograd.Function):
    """The identity forward; backward, the incoming gradient times ``scale`` (a tensor without gradient)."""

    @staticmethod
    def forward(ctx: th.autograd.function.FunctionCtx, x: th.Tensor, scale: th.Tensor) -> th.Tensor:
        ctx.scale = scale  # type: ignore[attr-defined]
        return x.view_as(x)

    @staticmethod
    def backward(ctx: th.autograd.function.FunctionCtx, grad: th.Tensor) -> tuple[th.Tensor, None]:
        return grad * ctx.scale, None  # type: ignore[attr-defined]


class NormalizedValueHead(_RunningMoments):
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

    With ``loss_units="normalized"`` the head takes the value loss's gradient in the units of its normalised targets
    instead, as PopArt trains its normalised head: the gradient reaching ``w h + b`` is divided by ``std ** 2``, which is
    the gradient of the same loss with both the value and its target divided by ``std``. The outputs are the same; the
    size of the head's gradient changes, which Adam and RMSprop mostly normalise away, and with it the head's share of
    the algorithm's gradient-norm clip (``max_grad_norm``), which the action head's gradient shares. In the units of the
    returns, the value head's gradient is ``std ** 2`` times larger, so on LunarLander it dominates that clip
    (``docs/benchmark.md``, twenty-sixth round). With ``loss_units="linear"`` the gradient is divided by ``std``: it is
    then the gradient that SB3's plain linear value head, whose weights are ``std * w``, gets for the same outputs and
    features, the size for which the zoo's ``max_grad_norm`` was tuned (twenty-seventh round).

    :param linear: The head's linear map (features to one output), initialised by the policy.
    :param rate: Weight ``0 < rate <= 1`` of each update in the moving averages.
    :param loss_units: ``"returns"`` (default), ``"linear"`` or ``"normalized"``: the units in which the head takes the
        value loss's gradient (the gradient divided by ``std ** 0``, ``std`` or ``std ** 2``).
    """

    def __init__(self, linear: nn.Linear, rate: float, loss_units: str = "returns") -> None:
        super().__init__()
        check_value_norm_rate(rate)
        check_value_loss_units(loss_units)
        if not isinstance(linear, nn.Linear) or linear.out_features != 1:
            raise ValueError(f"NormalizedValueHead needs an nn.Linear with one output, got {linear!r}")
        self.linear = linear
        self.loss_units = loss_units
        self._register_moments((), rate)

    @th.no_grad()
    def update(self, targets: th.Tensor) -> None:
        """Move the statistics towards a batch of value targets, keeping the head's outputs unchanged."""
        targets = targets.detach().to(self.mean.dtype).flatten()
        if targets.numel() == 0 or not th.isfinite(targets).all():
            return
        new_mean, new_std = self._moved_statistics(targets.mean(), (targets**2).mean(), min_std=1e-4, min_variance=1e-8)
        self.linear.weight.mul_(self.std / new_std)
        self.linear.bias.mul_(self.std).add_(self.mean - new_mean).div_(new_std)
        self.mean.copy_(new_mean)
        self.std.copy_(new_std)

    def forward(self, features: th.Tensor) -> th.Tensor:
        linear = self.linear
        normalized = F.linear(features, linear.weight, linear.bias)
        power = _GRADIENT_STD_POWER[self.loss_units]
        if power and normalized.requires_grad:
            normalized = _ScaleGradient.apply(normalized, self.std.pow(-power))
        return normalized * self.std + self.mean


def _linear_of(head: nn.Module, wrapper: str) -> nn.Linear:
    """
    The linear map that a wrapping head (``wrapper``) rescales: ``head`` itself, or the one inside a
    :class:`NormalizedValueHead`. Raises a ``ValueError`` naming the wrapper for anything else.
    """
    linear = head.linear if isinstance(head, NormalizedValueHead) else head
    if not isinstance(linear, nn.Linear) or linear.bias is None:
        raise ValueError(f"{wrapper} needs an nn.Linear with a bias or a NormalizedValueHead, got {head!r}")
    return linear


def check_head_input_norm_rate(rate: float) -> None:
    """Raise a ``ValueError`` naming ``head_input_norm_rate`` unless ``0 < rate <= 1``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise ValueError(
            f"head_input_norm_rate must be a number in (0, 1], a dict of such numbers with keys 'pi' and/or 'vf', or "
            f"None for raw features, got {rate!r}"
        )


#: Keys of a per-head ``head_input_norm_rate``, as in SB3's ``net_arch=dict(pi=..., vf=...)``.
HEAD_KEYS = ("pi", "vf")


def _per_head(value: float | dict[str, float] | None, check: Callable[[float], None], name: str) -> dict[str, float]:
    """
    A per-head policy option as a dict keyed by :data:`HEAD_KEYS`: one number for both heads, a dict with keys ``"pi"``
    and/or ``"vf"`` for some of them, or ``None`` for neither; each number passes ``check``. Raises a ``ValueError``
    naming ``name`` for anything else.
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        if not value or not set(value) <= set(HEAD_KEYS):
            raise ValueError(
                f"{name} as a dict needs keys among {list(HEAD_KEYS)} ('pi': action head, 'vf': value head), got {value!r}"
            )
        for number in value.values():
            check(number)
        return {key: float(value[key]) for key in HEAD_KEYS if key in value}
    check(value)
    return {key: float(value) for key in HEAD_KEYS}


def head_input_norm_rates(rate: float | dict[str, float] | None) -> dict[str, float]:
    """
    The rate of each head that reads standardised features, from a policy's ``head_input_norm_rate``: one number for
    both heads, a dict with keys ``"pi"`` (action head) and/or ``"vf"`` (value head) for some of them, or ``None`` for
    neither. Raises a ``ValueError`` naming ``head_input_norm_rate`` for anything else.
    """
    return _per_head(rate, check_head_input_norm_rate, "head_input_norm_rate")


class InputNormalizedHead(_RunningMoments):
    """
    A head that reads its features standardised per unit by running statistics: ``head((h - mean) / std)``.

    ``mean`` and ``std`` are debiased exponential moving averages of each feature over the training minibatches
    (updated in training mode with autograd on, as PDM layers step), and each update rescales the head's first linear
    map so that its outputs are unchanged by it (as :class:`NormalizedValueHead` does for its output statistics). Only
    ``linear``'s parameters are changed here; the algorithm's optimizer trains the head as before, on the detached
    features. A unit whose std falls below ``MIN_STD`` is divided by ``MIN_STD``, so a nearly constant unit is not
    blown up into noise.

    What it is for: the features of a PDM trunk (or of a frozen one) are strongly correlated and spread very unevenly
    over units, so a linear head trained by gradient steps learns the directions with little variance, where the task
    often lies, much more slowly than the dominant one; a backprop trunk rescales its own features for the head.
    Measured in ``docs/benchmark.md`` (ninth round): it helps frozen random features more than PDM ones, and it hurts
    A2C on CartPole.

    :param head: The head (``nn.Linear`` or :class:`NormalizedValueHead`).
    :param rate: Weight ``0 < rate <= 1`` of each training minibatch in the moving averages.
    """

    #: Smallest std a unit is divided by.
    MIN_STD = 0.01

    def __init__(self, head: nn.Module, rate: float) -> None:
        super().__init__()
        check_head_input_norm_rate(rate)
        linear = _linear_of(head, "InputNormalizedHead")
        self.head = head
        self._register_moments((linear.in_features,), rate)

    @property
    def linear(self) -> nn.Linear:
        """The head's first linear map (rescaled when the statistics move)."""
        return _linear_of(self.head, type(self).__name__)

    @th.no_grad()
    def update(self, features: th.Tensor) -> None:
        """Move the statistics towards a batch of features, keeping the head's outputs unchanged."""
        features = features.detach().to(self.mean.dtype).flatten(start_dim=1)
        if features.shape[0] == 0 or not th.isfinite(features).all():
            return
        new_mean, new_std = self._moved_statistics(features.mean(dim=0), (features**2).mean(dim=0), self.MIN_STD)
        # W (h - m) / s + b == W' (h - m') / s' + b'  with  W' = W s' / s  and  b' = b + W (m' - m) / s.
        linear = self.linear
        linear.bias.add_(linear.weight @ ((new_mean - self.mean) / self.std))
        linear.weight.mul_(new_std / self.std)
        self.mean.copy_(new_mean)
        self.std.copy_(new_std)

    def forward(self, features: th.Tensor) -> th.Tensor:
        if self.training and th.is_grad_enabled():
            self.update(features)
        return self.head((features - self.mean) / self.std)


def check_head_input_gain(gain: float) -> None:
    """Raise a ``ValueError`` naming ``head_input_gain`` unless ``gain`` is a finite number above 0."""
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 0 < gain < float("inf"):
        raise ValueError(
            f"head_input_gain must be a finite number > 0, a dict of such numbers with keys 'pi' and/or 'vf', or None "
            f"for raw features, got {gain!r}"
        )


def head_input_gains(gain: float | dict[str, float] | None) -> dict[str, float]:
    """
    The gain of each head that reads scaled features, from a policy's ``head_input_gain``: one number for both heads,
    a dict with keys ``"pi"`` and/or ``"vf"`` for some of them, or ``None`` for neither. Raises a ``ValueError`` naming
    ``head_input_gain`` for anything else.
    """
    return _per_head(gain, check_head_input_gain, "head_input_gain")


class ScaledInputHead(nn.Module):
    """
    A head that reads its features multiplied by a fixed gain: ``head(gain * h)``. At construction the head's linear
    map is divided by the gain, so its initial outputs are those of the wrapped head; what changes is how fast the
    algorithm's optimizer moves them. Adam and RMSprop step each weight by about the learning rate whatever its
    gradient's size, so the head's output moves by about ``lr * gain * |h|`` per step: a gain of 4 on features of per-unit
    std ``feature_scale = 0.25`` moves the head as fast as on features of std 1, without statistics that move with the
    features (:class:`InputNormalizedHead`) and without driving tanh units into saturation (a larger
    ``feature_scale``). Nothing crosses a hidden layer: the head reads the detached features as before.

    Measured in ``docs/benchmark.md`` (twenty-third round).

    :param head: The head (``nn.Linear`` with a bias or :class:`NormalizedValueHead`).
    :param gain: The factor, a finite number above 0.
    """

    def __init__(self, head: nn.Module, gain: float) -> None:
        super().__init__()
        check_head_input_gain(gain)
        linear = _linear_of(head, "ScaledInputHead")
        self.head = head
        self.gain = float(gain)
        with th.no_grad():
            linear.weight.div_(self.gain)

    @property
    def linear(self) -> nn.Linear:
        """The head's first linear map."""
        return _linear_of(self.head, type(self).__name__)

    def forward(self, features: th.Tensor) -> th.Tensor:
        return self.head(features * self.gain)

    def extra_repr(self) -> str:
        return f"gain={self.gain}"


def normalized_value_head(value_net: nn.Module | None) -> NormalizedValueHead | None:
    """
    The :class:`NormalizedValueHead` of a policy's ``value_net`` (also inside an :class:`InputNormalizedHead` or a
    :class:`ScaledInputHead`).
    """
    if isinstance(value_net, (InputNormalizedHead, ScaledInputHead)):
        value_net = value_net.head
    return value_net if isinstance(value_net, NormalizedValueHead) else None


#: Ridge of the ``head_follow`` correction, per sample, in units of the mean square of the head's inputs.
FOLLOW_RIDGE = 0.1


def head_follow_keys(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """
    The heads named by a policy's ``head_follow``: ``"pi"`` (action head), ``"vf"`` (value head), a list of them, or
    ``None`` for neither. Raises a ``ValueError`` naming ``head_follow`` for anything else.
    """
    if value is None:
        return ()
    keys = (value,) if isinstance(value, str) else value
    if not isinstance(keys, (list, tuple)) or not keys or not all(key in HEAD_KEYS for key in keys):
        raise ValueError(f"head_follow must be 'pi' (action head), 'vf' (value head), a list of them, or None, got {value!r}")
    return tuple(key for key in HEAD_KEYS if key in keys)


def head_linear(head: nn.Module) -> nn.Linear:
    """The linear map of a head: ``nn.Linear``, or the one inside a normalised or scaled head."""
    linear = head.linear if isinstance(head, (_RunningMoments, ScaledInputHead)) else head
    if not isinstance(linear, nn.Linear) or linear.bias is None:
        raise ValueError(f"head_follow needs heads with an nn.Linear with a bias, got {head!r}")
    return linear  # type: ignore[return-value]


@th.no_grad()
def follow_trunk(head: nn.Module, before: th.Tensor, after: th.Tensor, ridge: float = FOLLOW_RIDGE) -> None:
    """
    Correct ``head``'s linear map so that its output on a batch of features ``after`` (the trunk's, after its local
    steps) is what it was on ``before`` (the same samples before the steps): with ``z``, ``z'`` the head's inputs
    (standardised by :class:`InputNormalizedHead`'s statistics if it has them; for a :class:`ScaledInputHead`, its raw
    features and the map ``gain * W``), ``W, b`` take the ridge least-squares
    correction ``dW, db`` of ``(W + dW) z' + (b + db) = W z + b`` over the batch, with ridge ``ridge * sum_i |z'_i|^2 /
    d`` (scale-free: the same share of the features' mean square whether they are standardised or not).

    The correction is the head's own, from its detached inputs: nothing flows into the trunk. A non-finite or singular
    correction is skipped.

    :param head: ``nn.Linear``, :class:`NormalizedValueHead`, :class:`InputNormalizedHead` or
        :class:`ScaledInputHead`.
    :param before: Features ``(B, d)`` before the trunk's steps.
    :param after: The same samples' features after them.
    :param ridge: Ridge as a share of the features' mean square.
    """
    linear = head_linear(head)
    mean, std = (head.mean, head.std) if isinstance(head, InputNormalizedHead) else (0.0, 1.0)
    # A scaled head's map on its raw features is gain * W: it is corrected in those units (the solve's scale stays that of
    # the features), and the correction divided by the gain.
    gain = head.gain if isinstance(head, ScaledInputHead) else 1.0
    z_before = (before.detach().flatten(start_dim=1) - mean) / std
    z_after = (after.detach().flatten(start_dim=1) - mean) / std
    change = (z_before - z_after) @ (gain * linear.weight).T
    design = th.cat([z_after, th.ones_like(z_after[:, :1])], dim=1)
    gram = design.T @ design
    # Scale-free ridge: a share of the features' mean square, whatever their scale (standardised or raw).
    scale = gram.diagonal()[:-1].mean().clamp_min(th.finfo(gram.dtype).tiny)
    gram = gram + ridge * scale * th.eye(design.shape[1], device=design.device, dtype=gram.dtype)
    # solve_ex: a singular system (e.g. non-finite features) is skipped like a non-finite correction, not raised.
    correction, info = th.linalg.solve_ex(gram, design.T @ change)
    if info == 0 and th.isfinite(correction).all():
        linear.weight.add_(correction[:-1].T / gain)
        linear.bias.add_(correction[-1])
