"""
Reward-driven guidance: the route of a minibatch's returns, advantages and actions to the PDM layers.

SB3 calls ``policy.evaluate_actions(observations, actions)`` with no returns or advantages. The PDM rollout
buffers attach them to the observation tensor of each minibatch they yield, so the signals travel with that
minibatch and nothing else: two models in one process can never see each other's signals, and the only global
state is a counter that numbers the rollouts. The policy reads them back with :func:`read_signals`.

Use a buffer directly (``PPO(PDMPolicy, env, rollout_buffer_class=PDMRolloutBuffer)``), or let
:class:`sb3_pdm.PDMCallback` upgrade the algorithm's own buffer (the route for RL-Zoo hyperparameter files).
"""

import itertools
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import DictRolloutBufferSamples, RolloutBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

_ATTRIBUTE = "_pdm_guidance"


@dataclass(frozen=True)
class GuidanceSignals:
    """
    Per-sample signals of one minibatch.

    :param returns: Returns (value targets), shape ``(B,)``.
    :param advantages: Advantages, shape ``(B,)``.
    :param actions: Actions taken, shape ``(B, action_dim)``.
    :param epoch: Index of the pass over the rollout this minibatch belongs to (PPO's epoch, from 0): the number of
        times the buffer's ``get`` was called since its last ``reset``, minus one.
    :param rollout: Number of the rollout this minibatch belongs to, different for every ``reset`` of every PDM
        rollout buffer in the process (``None``: unknown, and ``max_feature_move`` does not apply).
    """

    returns: th.Tensor
    advantages: th.Tensor
    actions: th.Tensor
    epoch: int = 0
    rollout: int | None = None


def attach_signals(observations: th.Tensor | dict[str, th.Tensor], signals: GuidanceSignals) -> None:
    """Attach ``signals`` to the observation tensor(s) of a minibatch."""
    tensors = observations.values() if isinstance(observations, dict) else [observations]
    for tensor in tensors:
        setattr(tensor, _ATTRIBUTE, signals)


def read_signals(observations: th.Tensor | dict[str, th.Tensor]) -> GuidanceSignals | None:
    """The signals attached to a minibatch's observations, or ``None``."""
    if isinstance(observations, dict):
        observations = next(iter(observations.values()))
    return getattr(observations, _ATTRIBUTE, None)


def guided_buffer_class(buffer_class: type[RolloutBuffer]) -> type[RolloutBuffer]:
    """
    The subclass of an on-policy rollout buffer class that attaches :class:`GuidanceSignals` to every minibatch it
    yields (made once per class, then reused).

    :param buffer_class: A ``RolloutBuffer`` subclass, e.g. sb3-contrib's ``MaskableRolloutBuffer``.
    :return: Its guided subclass.
    """
    if getattr(buffer_class, "_pdm_guided", False):
        return buffer_class
    if buffer_class not in _GUIDED_CLASSES:

        def reset(self: RolloutBuffer) -> None:
            buffer_class.reset(self)
            self._pdm_passes = 0
            self._pdm_rollout = next(_ROLLOUT_NUMBERS)

        def get(self: RolloutBuffer, batch_size: int | None = None) -> Generator:
            # Counted when the pass starts (the first minibatch is drawn), one count per pass over the rollout.
            self._pdm_passes = getattr(self, "_pdm_passes", 0) + 1
            yield from buffer_class.get(self, batch_size)

        def _get_samples(self: RolloutBuffer, batch_inds: np.ndarray, env: VecNormalize | None = None):  # type: ignore[no-untyped-def]
            samples: RolloutBufferSamples | DictRolloutBufferSamples = buffer_class._get_samples(self, batch_inds, env)
            epoch = max(getattr(self, "_pdm_passes", 1) - 1, 0)
            rollout = getattr(self, "_pdm_rollout", None)
            signals = GuidanceSignals(samples.returns, samples.advantages, samples.actions, epoch, rollout)
            attach_signals(samples.observations, signals)
            return samples

        _GUIDED_CLASSES[buffer_class] = type(
            f"PDM{buffer_class.__name__}",
            (buffer_class,),
            {
                "reset": reset,
                "get": get,
                "_get_samples": _get_samples,
                "_pdm_guided": True,
                "__module__": __name__,
                "__doc__": f"SB3's ``{buffer_class.__name__}`` that routes returns, advantages and actions to the PDM layers.",
            },
        )
    return _GUIDED_CLASSES[buffer_class]


_GUIDED_CLASSES: dict[type, type] = {}
#: Numbers of the rollouts collected by the PDM rollout buffers (``GuidanceSignals.rollout``), unique in a process.
_ROLLOUT_NUMBERS = itertools.count()

#: SB3's ``RolloutBuffer`` that routes returns, advantages and actions to the PDM layers.
PDMRolloutBuffer = guided_buffer_class(RolloutBuffer)
#: SB3's ``DictRolloutBuffer`` that routes returns, advantages and actions to the PDM layers.
PDMDictRolloutBuffer = guided_buffer_class(DictRolloutBuffer)


def enable_guidance(buffer: RolloutBuffer) -> None:
    """
    Make an existing rollout buffer (of any ``RolloutBuffer`` subclass) attach guidance signals, by switching its
    class to the guided subclass of its own class.

    :param buffer: The algorithm's rollout buffer.
    """
    if not isinstance(buffer, RolloutBuffer):
        raise TypeError(f"PDM guidance needs an on-policy RolloutBuffer, got {type(buffer).__name__}")
    buffer.__class__ = guided_buffer_class(type(buffer))
