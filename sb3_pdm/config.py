"""Options of local PDM learning, shared by layers, trunks, extractors and policies, with their validation."""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch as th
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from sb3_pdm.objective import DISTANCES

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


#: Options of earlier versions that the project's ablations rejected, with the value that left each one off: a save
#: that carries the value still loads; any other value needs the version that had the option (docs/results.md).
REMOVED_OPTIONS: dict[str, Any] = {
    "normalization": "mean",
    "guidance_gate": False,
    "decorrelation_coef": 0.0,
    "input_norm_rate": None,
    "initial_feature_target": False,
}
#: The last version that had the options of :data:`REMOVED_OPTIONS` and of the policies' ``REMOVED_POLICY_OPTIONS``.
LAST_VERSION_WITH_REMOVED_OPTIONS = "0.1.0"


def drop_removed_options(options: dict[str, Any], removed: dict[str, Any]) -> dict[str, Any]:
    """
    ``options`` without the removed ones that are at their "off" value (as earlier versions saved them), so that such
    saves still load; a ``ValueError`` naming the option and the version for a removed option that was in use.

    :param options: Keyword arguments, e.g. ``pdm_kwargs`` or a policy's constructor arguments read from a save.
    :param removed: Removed option names with their "off" values.
    """
    kept = dict(options)
    for name, off in removed.items():
        if name not in kept:
            continue
        value = kept.pop(name)
        if value != off:
            raise ValueError(
                f"{name}={value!r} was removed after sb3_pdm {LAST_VERSION_WITH_REMOVED_OPTIONS} (the project's ablations "
                f"rejected it, see docs/results.md); install sb3_pdm=={LAST_VERSION_WITH_REMOVED_OPTIONS} to use it or "
                f"to load a model saved with it"
            )
    return kept


@dataclass
class PDMConfig:
    """
    Options of the local learning rule of every PDM layer in a network (``docs/method.md``).

    :param distance: Pairwise distance matched between input and output: ``"euclidean"`` (default),
        ``"sqeuclidean"`` or ``"cosine"``. Guidance distances use
        :data:`sb3_pdm.objective.GUIDANCE_DISTANCE` of it.
    :param feature_scale: Per-unit standard deviation the layer's features are driven to: the target distances' mean
        is tied to it, which anchors the feature scale. The default 0.25 keeps tanh units out of saturation.
    :param guidance_coef: Weight ``beta >= 0`` of the reward signals' distances in the target (0 disables guidance).
    :param local_lr: Learning rate of each layer's own optimizer: a float, a schedule of the remaining progress
        (1 -> 0) as SB3's ``learning_rate``, or ``"lin_<rate>"`` (RL-Zoo's notation: from ``<rate>`` down to 0
        linearly over training, e.g. ``"lin_3e-4"``). Schedules need :class:`sb3_pdm.PDMCallback`.
    :param local_optimizer: ``"adam"`` (default), ``"sgd"``, ``"rmsprop"`` or a ``torch.optim.Optimizer`` class.
    :param local_optimizer_kwargs: Extra keyword arguments of the local optimizer.
    :param local_steps: Local optimizer steps per training-mode forward pass.
    :param max_pair_samples: At most this many samples of a minibatch form the pairs of the local loss (a random
        subset is drawn when the batch is larger), which bounds time and memory at ``O(max_pair_samples^2)``.
    :param local_epochs: The layers step only during the first ``local_epochs`` passes over each rollout (PPO's
        ``n_epochs``; A2C makes one pass, TRPO one for the actor and ``n_critic_updates`` for the critic) and are
        fixed during the others, where the heads keep learning on features that no longer move. ``None``: every pass.
        The passes are counted by the PDM rollout buffers (``PDMRolloutBuffer`` or ``PDMCallback``).
    :param max_feature_move: A trust region for each layer per rollout: a local step is skipped (counted as ``held``)
        while the median over the layer's units of ``rms(f - f_start) / std(f_start)`` on the minibatch exceeds it,
        where ``f_start`` is the output with the parameters the layer had when the rollout began. ``None``: no limit.
        Needs the PDM rollout buffers, which tell rollouts apart.
    :param local_learning: ``False`` keeps the layers at their initial (random) parameters: the frozen-random-features
        control with ``pdm_kwargs``, or, with ``actor_pdm_kwargs=dict(local_learning=False)``, a fixed random actor
        trunk beside a locally learning critic trunk.
    """

    distance: str = "euclidean"
    feature_scale: float = 0.25
    guidance_coef: float = 1.0
    local_lr: float | str | Callable[[float], float] = 3e-4
    local_optimizer: str | type[th.optim.Optimizer] = "adam"
    local_optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    local_steps: int = 1
    max_pair_samples: int = 128
    local_epochs: int | None = 5
    max_feature_move: float | None = 0.1
    local_learning: bool = True

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(f"Unknown distance '{self.distance}', expected one of {DISTANCES}")
        _check_number(self.feature_scale, "feature_scale", "a positive number", lambda v: v > 0)
        _check_number(self.guidance_coef, "guidance_coef", "a number >= 0 (0 disables guidance)", lambda v: v >= 0)
        if isinstance(self.local_lr, str):
            _parse_linear_rate(self.local_lr)
        elif not callable(self.local_lr):
            _check_number(self.local_lr, "local_lr", "a positive number, a schedule or 'lin_<rate>'", lambda v: v > 0)
        self.optimizer_class  # noqa: B018 (validates local_optimizer)
        if not isinstance(self.local_optimizer_kwargs, dict):
            raise TypeError(f"local_optimizer_kwargs must be a dict, got {self.local_optimizer_kwargs!r}")
        _check_integer(self.local_steps, "local_steps", 1)
        _check_integer(self.max_pair_samples, "max_pair_samples", 2, "(samples that form pairs)")
        if self.local_epochs is not None:
            _check_integer(self.local_epochs, "local_epochs", 1, "(passes over each rollout) or None (every pass)")
        if self.max_feature_move is not None:
            _check_number(
                self.max_feature_move,
                "max_feature_move",
                "a number > 0 (the output's move per rollout, in units of its std) or None (no limit)",
                lambda v: v > 0,
            )
        if not isinstance(self.local_learning, bool):
            raise TypeError(f"local_learning must be a bool, got {self.local_learning!r}")

    @classmethod
    def from_kwargs(cls, pdm_kwargs: "PDMConfig | dict[str, Any] | None") -> "PDMConfig":
        """
        The configuration given as ``pdm_kwargs`` to a policy or extractor: a :class:`PDMConfig`, a dict of its options
        or ``None`` for the defaults. Options removed after earlier versions load at their "off" value
        (:data:`REMOVED_OPTIONS`); an unknown option raises a ``ValueError`` naming it.
        """
        if pdm_kwargs is None:
            return cls()
        if isinstance(pdm_kwargs, cls):
            return pdm_kwargs
        if not isinstance(pdm_kwargs, dict):
            raise TypeError(f"pdm_kwargs must be a dict of PDMConfig options, a PDMConfig or None, got {pdm_kwargs!r}")
        options = drop_removed_options(pdm_kwargs, REMOVED_OPTIONS)
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"Unknown pdm_kwargs {unknown}, accepted: {names}")
        return cls(**options)

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


def _check_number(value: Any, name: str, expected: str, valid: Callable[[float], bool]) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``value`` is a finite real number for which ``valid`` holds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not valid(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _check_integer(value: Any, name: str, minimum: int, meaning: str = "") -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``value`` is an int of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' ' + meaning if meaning else ''}, got {value!r}")
