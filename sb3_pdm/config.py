"""Options of local PDM learning, shared by layers, trunks, extractors and policies, with their validation."""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch as th
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from sb3_pdm.objective import DISTANCES, NORMALIZATIONS

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}

OPTIMIZERS: dict[str, type[th.optim.Optimizer]] = {
    "adam": th.optim.Adam,
    "sgd": th.optim.SGD,
    "rmsprop": th.optim.RMSprop,
}


def resolve_activation(activation_fn: str | type[nn.Module], name: str = "activation_fn") -> type[nn.Module]:
    """
    Accept an ``nn.Module`` class (as SB3 does) or one of the names in :data:`ACTIVATIONS`.

    :param activation_fn: Activation class or name.
    :param name: Parameter name used in the error message.
    :return: The activation class.
    """
    if isinstance(activation_fn, str):
        if activation_fn.lower() not in ACTIVATIONS:
            raise ValueError(f"Unknown {name} '{activation_fn}', expected an nn.Module class or one of {sorted(ACTIVATIONS)}")
        return ACTIVATIONS[activation_fn.lower()]
    if isinstance(activation_fn, type) and issubclass(activation_fn, nn.Module):
        return activation_fn
    raise TypeError(f"{name} must be an nn.Module class (e.g. nn.Tanh) or one of {sorted(ACTIVATIONS)}, got {activation_fn!r}")


def check_sizes(sizes: list[int], name: str) -> None:
    """Raise a ``ValueError`` naming ``name`` unless every entry of ``sizes`` is a positive int."""
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ValueError(f"{name} must contain positive integers (layer widths), got {sizes!r}")


@dataclass
class PDMConfig:
    """
    Options of the local learning rule of every PDM layer in a network.

    :param distance: Pairwise distance matched between input and output: ``"euclidean"`` (default),
        ``"sqeuclidean"`` or ``"cosine"``.
    :param normalization: Normalisation of the target distances: ``"mean"`` (default, the target's mean is tied to
        ``feature_scale``, which anchors the feature scale), ``"running"`` (input and guidance distances divided by
        moving averages of their batch means instead of each batch's own, and raw guidance signals: the feature
        scale is anchored over batches, while a batch of closer samples or more similar returns keeps closer
        features) or ``"none"`` (the target keeps the input's scale).
    :param feature_scale: Per-unit standard deviation the layer's features are driven to (``normalization="mean"``);
        the default 0.25 keeps tanh units out of saturation (``docs/method.md``).
    :param guidance_coef: Weight ``beta >= 0`` of reward-signal distances in the target (0 disables guidance).
    :param local_lr: Learning rate of each layer's own optimizer: a float, a schedule of the remaining progress
        (1 -> 0) as SB3's ``learning_rate``, or ``"lin_<rate>"`` (RL-Zoo's notation: from ``<rate>`` down to 0
        linearly over training, e.g. ``"lin_3e-4"``).
    :param local_optimizer: ``"adam"`` (default), ``"sgd"``, ``"rmsprop"`` or a ``torch.optim.Optimizer`` class.
    :param local_optimizer_kwargs: Extra keyword arguments of the local optimizer.
    :param local_steps: Local optimizer steps per training-mode forward pass.
    :param max_pair_samples: At most this many samples of a minibatch form the pairs of the local loss (a random
        subset is drawn when the batch is larger), which bounds time and memory at ``O(max_pair_samples^2)``.
    :param local_epochs: The layers step only during the first ``local_epochs`` passes over each rollout (PPO's
        ``n_epochs``; A2C makes one pass) and are fixed during the others, where the heads keep learning on
        features that no longer move. Default 5: on CartPole PPO (20 epochs) returns within the seed spread of every
        pass's, at about 60% of its time (``docs/benchmark.md``, sixth round); PPO with at most 5 epochs and A2C are
        unaffected.
        ``None``: every pass. The passes are counted by the PDM rollout buffers (``PDMRolloutBuffer`` or
        ``PDMCallback``).
    :param guidance_gate: Scale each local step's learning rate by ``min(1, s / s_avg)``, where ``s`` is the spread
        (root of the summed per-dimension variances) of the minibatch's raw guidance signals and ``s_avg`` its slow,
        debiased moving average (rate :data:`sb3_pdm.layers.GATE_RATE` per local step): the layers step less when
        the returns (critic) or advantages (actor) differ less than they used to, e.g. once a policy is good. Needs
        guidance (``guidance_coef > 0``, else a ``ValueError``) and its signals; an experiment, off by default
        (``docs/benchmark.md``).
    :param decorrelation_coef: Weight ``>= 0`` of a second local term that pulls the covariance of the layer's output
        towards ``feature_scale**2`` times the identity (:func:`sb3_pdm.objective.decorrelation_loss_and_grad`), so
        that the variance is spread over the units instead of lying in a few directions. 0 (default) leaves the loss
        as it is; an experiment (``docs/benchmark.md``). With as many output features as samples or more (A2C's
        40-sample updates on 64 units, convolutional maps) one batch's covariance cannot reach its target and the term
        pulls that batch's samples towards equal distances; across batches the effect is small (``docs/method.md``).
    :param input_norm_rate: Measure the input distances of the target on the layer's input divided per feature by its
        running standard deviation (a debiased moving average at this rate per local step, floored at
        :data:`sb3_pdm.layers.INPUT_STD_FLOOR`), so that every input feature weighs the same in the geometry the
        layer keeps, whatever its units: under a random policy, CartPole's raw observations put 98% of their squared
        distances in the two velocities and 1% in the pole's angle. ``None`` (default): the raw input. Only the
        target changes; the layer still reads its raw input. An experiment (``docs/benchmark.md``).
    :param initial_feature_target: Measure the input distances of the target between the layer's *initial* features
        of its input (its map with the parameters it had before its first local step, a fixed random-feature map)
        instead of between the inputs themselves: kernel MDS with the random-feature kernel of the initial layer. A
        map that keeps plain Euclidean input distances is affine; this target keeps the initial layer's non-linear
        geometry instead, so without guidance the layer stays near the frozen control (up to the feature scale the
        target anchors), and the guidance distances are what move it. With ``input_norm_rate`` the initial features
        are standardised. An experiment (``docs/benchmark.md``).
    :param max_feature_move: A trust region for each layer per rollout. Before each local step the layer compares its
        output on the minibatch with the output it would give with the parameters it had at its first local step on
        this rollout; where the median over its units of the move, ``rms(f - f_start) / std(f_start)`` over the
        samples, exceeds ``max_feature_move``, the layer skips that step (counted as ``held`` in
        :meth:`~sb3_pdm.layers.PDMLayer.pop_diagnostics`). Each step is checked on its own minibatch, so a layer past
        the limit steps again where a minibatch measures a smaller move: a soft ceiling, not a latch. The first step
        of a rollout always happens, so A2C (one step per rollout) is unaffected. Rollouts are told apart by the PDM
        rollout buffers; without them the limit does not apply. ``None``: no limit. Default 0.1 since the sixteenth
        round of ``docs/benchmark.md`` (``None`` before): without it a PPO rollout of many minibatches moves a PDM
        trunk far further than backprop moves its own.
    :param local_learning: ``False`` keeps the layers at their initial (random) parameters: the frozen-random-features
        control with ``pdm_kwargs``, or, with ``actor_pdm_kwargs=dict(local_learning=False)``, a fixed random actor
        trunk beside a locally learning critic trunk. The actor trunk's local steps change the policy outside PPO's
        clipped update (``docs/benchmark.md``, eleventh round).
    """

    distance: str = "euclidean"
    normalization: str = "mean"
    feature_scale: float = 0.25
    guidance_coef: float = 1.0
    local_lr: float | str | Callable[[float], float] = 3e-4
    local_optimizer: str | type[th.optim.Optimizer] = "adam"
    local_optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    local_steps: int = 1
    max_pair_samples: int = 128
    local_epochs: int | None = 5
    guidance_gate: bool = False
    decorrelation_coef: float = 0.0
    input_norm_rate: float | None = None
    initial_feature_target: bool = False
    max_feature_move: float | None = 0.1
    local_learning: bool = True

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(f"Unknown distance '{self.distance}', expected one of {DISTANCES}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"Unknown normalization '{self.normalization}', expected one of {NORMALIZATIONS}")
        _check_positive(self.feature_scale, "feature_scale")
        if not isinstance(self.guidance_coef, (int, float)) or self.guidance_coef < 0:
            raise ValueError(f"guidance_coef must be a number >= 0 (0 disables guidance), got {self.guidance_coef!r}")
        if isinstance(self.local_lr, str):
            _parse_linear_rate(self.local_lr)
        elif not callable(self.local_lr):
            _check_positive(self.local_lr, "local_lr")
        self.optimizer_class  # noqa: B018 (validates local_optimizer)
        if isinstance(self.local_steps, bool) or not isinstance(self.local_steps, int) or self.local_steps <= 0:
            raise ValueError(f"local_steps must be a positive integer, got {self.local_steps!r}")
        if isinstance(self.max_pair_samples, bool) or not isinstance(self.max_pair_samples, int) or self.max_pair_samples < 2:
            raise ValueError(
                f"max_pair_samples must be an integer >= 2 (samples that form pairs), got {self.max_pair_samples!r}"
            )
        if self.local_epochs is not None and (
            isinstance(self.local_epochs, bool) or not isinstance(self.local_epochs, int) or self.local_epochs <= 0
        ):
            raise ValueError(
                f"local_epochs must be a positive integer (passes over each rollout) or None (every pass), "
                f"got {self.local_epochs!r}"
            )
        if not isinstance(self.guidance_gate, bool):
            raise TypeError(f"guidance_gate must be a bool, got {self.guidance_gate!r}")
        if self.guidance_gate and self.guidance_coef == 0:
            raise ValueError("guidance_gate=True needs guidance_coef > 0: the gate follows the spread of the guidance signals")
        if (
            isinstance(self.decorrelation_coef, bool)
            or not isinstance(self.decorrelation_coef, (int, float))
            or not (self.decorrelation_coef >= 0 and math.isfinite(self.decorrelation_coef))
        ):
            raise ValueError(f"decorrelation_coef must be a finite number >= 0 (0: off), got {self.decorrelation_coef!r}")
        if self.input_norm_rate is not None and (
            isinstance(self.input_norm_rate, bool)
            or not isinstance(self.input_norm_rate, (int, float))
            or not 0 < self.input_norm_rate <= 1
        ):
            raise ValueError(
                f"input_norm_rate must be a number in (0, 1] (rate of the input's running statistics) or None (raw "
                f"input distances), got {self.input_norm_rate!r}"
            )

        if not isinstance(self.initial_feature_target, bool):
            raise TypeError(f"initial_feature_target must be a bool, got {self.initial_feature_target!r}")
        if self.max_feature_move is not None and (
            isinstance(self.max_feature_move, bool)
            or not isinstance(self.max_feature_move, (int, float))
            or not (self.max_feature_move > 0 and math.isfinite(self.max_feature_move))
        ):
            raise ValueError(
                f"max_feature_move must be a finite number > 0 (the output's move per rollout, in units of its std) or "
                f"None (no limit), got {self.max_feature_move!r}"
            )
        if not isinstance(self.local_learning, bool):
            raise TypeError(f"local_learning must be a bool got {self.local_learning!r}")

    @property
    def optimizer_class(self) -> type[th.optim.Optimizer]:
        """The local optimizer class."""
        if isinstance(self.local_optimizer, str):
            if self.local_optimizer.lower() not in OPTIMIZERS:
                raise ValueError(
                    f"Unknown local_optimizer '{self.local_optimizer}', expected a torch.optim.Optimizer class "
                    f"or one of {sorted(OPTIMIZERS)}"
                )
            return OPTIMIZERS[self.local_optimizer.lower()]
        if isinstance(self.local_optimizer, type) and issubclass(self.local_optimizer, th.optim.Optimizer):
            return self.local_optimizer
        raise TypeError(f"local_optimizer must be a torch.optim.Optimizer class or a name, got {self.local_optimizer!r}")

    @property
    def scheduled(self) -> bool:
        """Whether the local rate changes over training (a schedule or ``"lin_<rate>"``), not a constant."""
        return isinstance(self.local_lr, str) or callable(self.local_lr)

    def lr_at(self, progress_remaining: float) -> float:
        """Local learning rate at the given remaining progress (1 at the start of training, 0 at the end)."""
        if isinstance(self.local_lr, str):
            return float(LinearSchedule(_parse_linear_rate(self.local_lr), 0.0, 1.0)(progress_remaining))
        lr = self.local_lr(progress_remaining) if callable(self.local_lr) else self.local_lr
        return float(lr)

    def to_dict(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this configuration."""
        return asdict(self)


def _parse_linear_rate(schedule: str) -> float:
    """The initial rate of a ``"lin_<rate>"`` schedule; a ``ValueError`` naming ``local_lr`` for anything else."""
    prefix, _, rate = schedule.partition("_")
    try:
        value = float(rate)
    except ValueError:
        value = float("nan")
    if prefix != "lin" or not value > 0 or value == float("inf"):
        raise ValueError(f"local_lr as a string must be 'lin_<positive rate>' (e.g. 'lin_3e-4'), got {schedule!r}")
    return value


def _check_positive(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
