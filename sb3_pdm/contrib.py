"""
sb3-contrib algorithms with PDM policies.

**MaskablePPO**: :class:`MaskablePDMPolicy` (below). ``PDMCallback`` (or ``rollout_buffer_class=
PDMMaskableRolloutBuffer``) routes the guidance signals through MaskablePPO's own rollout buffer, and the action
masks reach the heads as in sb3-contrib: ``evaluate_actions(obs, actions, action_masks=...)`` and
``get_distribution(obs, action_masks=...)`` take one local PDM step in training mode, as in PPO.

**TRPO**: use :class:`sb3_pdm.PDMPolicy` as is (``TRPO(PDMPolicy, env)``, ``callback=PDMCallback()``). TRPO never
calls ``evaluate_actions``; in one ``train()`` it calls, in training mode:

1. ``get_distribution(obs)`` under ``torch.no_grad()`` for the old policy: no local step (PDM layers only learn
   when autograd is on);
2. ``get_distribution(obs)`` with autograd on, on the whole rollout (``batch_size=None``): **one** local step of
   the actor trunk (and of a shared features extractor), guided by the advantage-weighted actions. The features it
   returns are those from *before* the step, so the surrogate objective, the KL and the natural-gradient direction
   are computed as in TRPO, and the old and new distributions agree at the start (KL 0);
3. the backtracking line search, entirely under ``torch.no_grad()``: **no** local step, whatever the number of
   trials. Its forward passes recompute the features with the actor trunk as updated in 2, so the KL it checks is
   that of the whole policy (moved features and candidate heads) against the old policy: an accepted step keeps the
   full policy inside the trust region. When the line search fails, TRPO reverts the heads (and ``log_std``) but
   the trunk keeps its local step, which lies outside the trust region (it is small: one optimizer step of
   ``local_lr``);
4. ``n_critic_updates`` passes of ``predict_values`` over the rollout's minibatches with autograd on: one local step
   of the critic trunk per minibatch, guided by the returns, as in PPO's value loss, in the passes that
   ``local_epochs`` allows. Each pass over the rollout counts, the actor's included: with the default
   ``local_epochs=5`` the critic trunk steps in the first 4 of the ``n_critic_updates`` (the zoo sets 15-20), and the
   value head keeps learning on fixed features in the others, as PPO's heads do in its epochs beyond
   ``local_epochs``. That keeps one meaning for ``local_epochs`` across algorithms and the critic trunk's steps per
   rollout close to PPO's; ``local_epochs=None`` steps in every pass.

TRPO builds its parameter list from the parameters that receive a KL gradient: PDM layers return detached outputs
and never appear there, so the conjugate gradient and the line search act on the heads and ``log_std`` only, and
``policy.optimizer`` (the critic's) holds only the heads. With ``sub_sampling_factor > 1``, TRPO slices the
observations into a new tensor that carries no guidance signals: the actor's local step then trains on input
geometry alone (and the missing-guidance warning fires). The zoo's TRPO settings for the envs in
``hyperparams/trpo.yml`` keep the default ``sub_sampling_factor=1``.

**RecurrentPPO** is not supported: it needs LSTM layers trained through time by backpropagation, and a PDM layer's
local loss compares the samples of one minibatch and has no recurrent form; ``RecurrentPPO(PDMPolicy, env)``
raises a ``TypeError`` that says so.
"""

from typing import Any

from gymnasium import spaces
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBuffer, MaskableRolloutBuffer
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor

from sb3_pdm.guidance import guided_buffer_class
from sb3_pdm.policies import PDMActorCriticMixin

#: sb3-contrib's ``MaskableRolloutBuffer`` that routes returns, advantages and actions to the PDM layers.
PDMMaskableRolloutBuffer = guided_buffer_class(MaskableRolloutBuffer)
#: sb3-contrib's ``MaskableDictRolloutBuffer`` that routes returns, advantages and actions to the PDM layers.
PDMMaskableDictRolloutBuffer = guided_buffer_class(MaskableDictRolloutBuffer)


class MaskablePDMPolicy(PDMActorCriticMixin, MaskableActorCriticPolicy):
    """
    sb3-contrib's ``MaskableActorCriticPolicy`` (for ``MaskablePPO``) whose hidden layers learn by local pairwise
    distance matching, as :class:`sb3_pdm.PDMPolicy`: PDM actor and critic trunks, ``policy.optimizer`` holding
    only the action and value heads. Masked-out actions never reach the guidance signal: it is built from the
    actions taken, which the masks allowed.

    For reward-driven guidance, pass ``callback=PDMCallback()`` to ``learn()`` (it upgrades MaskablePPO's own
    rollout buffer) or ``rollout_buffer_class=PDMMaskableRolloutBuffer`` (``PDMMaskableDictRolloutBuffer`` for
    ``Dict`` observations) to ``MaskablePPO``.

    Arguments as :class:`sb3_pdm.PDMPolicy`, with a Discrete, MultiDiscrete or MultiBinary action space; other
    keyword arguments go to ``MaskableActorCriticPolicy``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        **kwargs: Any,
    ) -> None:
        if isinstance(action_space, spaces.Box):
            raise ValueError(
                f"MaskablePPO needs a discrete action space (Discrete, MultiDiscrete, MultiBinary), got {action_space}"
            )
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )
