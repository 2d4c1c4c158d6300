"""
PDM actor-critic policies: SB3's ``ActorCriticPolicy`` with hidden layers trained by local pairwise distance
matching. Only the action head (and ``log_std``) and the value head are trained by the algorithm's loss.
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn

from sb3_pdm.config import PDMConfig, resolve_activation
from sb3_pdm.extractors import PDMCombinedExtractor, PDMMlpFeaturesExtractor, PDMNatureCNN, make_config
from sb3_pdm.guidance import GuidanceSignals, read_signals
from sb3_pdm.heads import (
    InputNormalizedHead,
    NormalizedValueHead,
    ScaledInputHead,
    check_value_loss_units,
    check_value_norm_rate,
    head_follow_keys,
    head_input_gains,
    head_input_norm_rates,
    head_linear,
    normalized_value_head,
)
from sb3_pdm.layers import PDMLayer, pdm_layers
from sb3_pdm.trunks import PDMMlpExtractor

#: Default hidden widths of the actor and critic trunks.
DEFAULT_NET_ARCH = dict(pi=[64, 64], vf=[64, 64])
#: Codes of discrete actions in the actor trunk's guidance signal (policy option ``action_code``).
ACTION_CODES = ("onehot", "centered")

_SUPPORTED_ACTIONS = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_PDM_EXTRACTORS = (PDMMlpFeaturesExtractor, PDMNatureCNN, PDMCombinedExtractor)
# What other algorithms look up on their policy, and why a PDM policy cannot serve them.
_UNSUPPORTED_ATTRIBUTES = {
    "q_net": "DQN-style algorithms need a Q-network policy",
    "q_net_target": "DQN-style algorithms need a Q-network policy",
    "actor": "off-policy actor-critic algorithms (SAC, TD3, DDPG, TQC, CrossQ) need their own actor/critic policy",
    "actor_target": "off-policy actor-critic algorithms (SAC, TD3, DDPG, TQC, CrossQ) need their own actor/critic policy",
    "critic": "off-policy actor-critic algorithms (SAC, TD3, DDPG, TQC, CrossQ) need their own actor/critic policy",
    "critic_target": "off-policy actor-critic algorithms (SAC, TD3, DDPG, TQC, CrossQ) need their own actor/critic policy",
    "lstm_actor": (
        "RecurrentPPO needs LSTM layers trained through time by backpropagation; a PDM layer's local loss compares "
        "samples of one minibatch and has no recurrent form in sb3_pdm"
    ),
}


def _unsupported(attribute: str, reason: str) -> property:
    def getter(self: nn.Module) -> None:
        raise TypeError(
            f"{type(self).__name__} is an on-policy actor-critic policy (PPO, A2C, TRPO; MaskablePPO through "
            f"MaskablePDMPolicy) and has no '{attribute}': {reason}."
        )

    return property(getter)


class PDMActorCriticMixin:
    """
    Turns an SB3 actor-critic policy class into a PDM policy (see :class:`PDMPolicy`). Shared by
    :class:`PDMPolicy` and sb3-contrib's maskable variant.
    """

    features_extractor: BaseFeaturesExtractor
    mlp_extractor: PDMMlpExtractor
    action_space: spaces.Space

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: str | type[nn.Module] = nn.Tanh,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        pdm_kwargs: PDMConfig | dict[str, Any] | None = None,
        share_trunk: bool = False,
        skip_to_heads: bool = False,
        value_norm_rate: float | None = 0.01,
        actor_pdm_kwargs: dict[str, Any] | None = None,
        head_input_norm_rate: float | dict[str, float] | None = None,
        head_follow: str | list[str] | None = None,
        action_code: str = "onehot",
        head_input_gain: float | dict[str, float] | None = None,
        value_loss_units: str = "returns",
        **kwargs: Any,
    ) -> None:
        self.pdm_config = make_config(pdm_kwargs)
        if action_code not in ACTION_CODES:
            raise ValueError(f"action_code must be one of {', '.join(map(repr, ACTION_CODES))}, got {action_code!r}")
        self.action_code = action_code
        if actor_pdm_kwargs is not None and not isinstance(actor_pdm_kwargs, dict):
            raise TypeError(f"actor_pdm_kwargs must be a dict of PDMConfig options or None, got {actor_pdm_kwargs!r}")
        self.actor_pdm_kwargs = actor_pdm_kwargs
        self.actor_pdm_config = (
            None if actor_pdm_kwargs is None else make_config({**self.pdm_config.to_dict(), **actor_pdm_kwargs})
        )
        self.share_trunk = share_trunk
        self.skip_to_heads = skip_to_heads
        if value_norm_rate is not None:
            check_value_norm_rate(value_norm_rate)
        self.value_norm_rate = value_norm_rate
        check_value_loss_units(value_loss_units)
        if value_loss_units != "returns" and value_norm_rate is None:
            raise ValueError(
                f"value_loss_units={value_loss_units!r} needs the normalised value head (value_norm_rate set); with "
                f"value_norm_rate=None the plain head takes the loss in the units of the returns"
            )
        self.value_loss_units = value_loss_units
        self._head_input_norm_rates = head_input_norm_rates(head_input_norm_rate)
        self.head_input_norm_rate = head_input_norm_rate
        self._head_input_gains = head_input_gains(head_input_gain)
        both = sorted(set(self._head_input_gains) & set(self._head_input_norm_rates))
        if both:
            raise ValueError(
                f"head_input_gain and head_input_norm_rate both rescale what a head reads; set one of them per head "
                f"(both set for {both})"
            )
        self.head_input_gain = head_input_gain
        self._head_follow_keys = head_follow_keys(head_follow)
        self.head_follow = head_follow
        self._warned_missing_guidance = False
        self._n_missing_guidance = 0
        # The last rollout number seen in a minibatch's signals (max_feature_move): a new one starts the layers' moves.
        self._pdm_rollout: int | None = None
        if not isinstance(action_space, _SUPPORTED_ACTIONS):
            raise ValueError(
                f"Unsupported action space {action_space}: PDM policies accept "
                f"{', '.join(space.__name__ for space in _SUPPORTED_ACTIONS)}"
            )
        self._check_observation_space(observation_space, features_extractor_class)
        features_extractor_kwargs = dict(features_extractor_kwargs or {})
        if issubclass(features_extractor_class, _PDM_EXTRACTORS):
            # PDM extractors learn with the policy's options unless told otherwise.
            features_extractor_kwargs.setdefault("pdm_kwargs", self.pdm_config.to_dict())
        super().__init__(  # type: ignore[call-arg]
            observation_space,
            action_space,
            lr_schedule,
            net_arch=DEFAULT_NET_ARCH if net_arch is None else net_arch,
            activation_fn=resolve_activation(activation_fn),
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            **kwargs,
        )

    @staticmethod
    def _check_observation_space(observation_space: spaces.Space, features_extractor_class: type) -> None:
        if isinstance(observation_space, spaces.Dict) and features_extractor_class is FlattenExtractor:
            raise ValueError(
                "Dict observation spaces need MultiInputPDMPolicy (features_extractor_class=PDMCombinedExtractor)"
            )
        if not isinstance(
            observation_space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Dict)
        ):
            raise ValueError(
                f"Unsupported observation space {observation_space}: PDM policies accept Box, Discrete, "
                "MultiDiscrete, MultiBinary (PDMPolicy, CnnPDMPolicy) and Dict (MultiInputPDMPolicy)"
            )

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = PDMMlpExtractor(
            self.features_dim,  # type: ignore[attr-defined]
            self.net_arch,  # type: ignore[attr-defined]
            self.activation_fn,  # type: ignore[attr-defined]
            self.pdm_config,
            self.share_trunk,
            self.skip_to_heads,
            self.actor_pdm_config,
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        if self.value_norm_rate is not None:
            # Wraps the initialised linear head: same parameters, outputs in the units of the returns' statistics.
            self.value_net = NormalizedValueHead(self.value_net, self.value_norm_rate, self.value_loss_units)
        # The heads read their features standardised by running statistics (both, or the one named); same parameters,
        # same outputs.
        rates = self._head_input_norm_rates
        if "pi" in rates:
            self.action_net = InputNormalizedHead(self.action_net, rates["pi"])
        if "vf" in rates:
            self.value_net = InputNormalizedHead(self.value_net, rates["vf"])
        # Or read them multiplied by a fixed gain (the heads' initial outputs unchanged).
        gains = self._head_input_gains
        if "pi" in gains:
            self.action_net = ScaledInputHead(self.action_net, gains["pi"])
        if "vf" in gains:
            self.value_net = ScaledInputHead(self.value_net, gains["vf"])
        # Heads that follow their trunk's local steps (head_follow); checked here, where the heads exist.
        heads = {"pi": self.action_net, "vf": self.value_net}
        for key in self._head_follow_keys:
            head_linear(heads[key])
        self.mlp_extractor.set_followers({key: heads[key] for key in self._head_follow_keys})
        # The algorithm's optimizer holds the head parameters only: PDM layers have their own local optimizers.
        self.optimizer = self.optimizer_class(  # type: ignore[attr-defined]
            self.head_parameters(),
            lr=lr_schedule(1),
            **self.optimizer_kwargs,  # type: ignore[attr-defined]
        )
        # Guidance role of each PDM layer, fixed once the networks exist (read on every training minibatch).
        trunk = self.mlp_extractor
        actor = [] if trunk.share_trunk else pdm_layers(trunk.policy_net)
        critic = [] if trunk.share_trunk else pdm_layers(trunk.value_net)
        role_ids = {id(layer) for layer in actor + critic}
        self._guidance_roles: tuple[list[PDMLayer], list[PDMLayer], list[PDMLayer]] = (
            actor,
            critic,
            [layer for layer in pdm_layers(self) if id(layer) not in role_ids],  # type: ignore[arg-type]
        )

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by the algorithm's loss: everything outside the PDM layers (heads, ``log_std``)."""
        local = {id(p) for layer in pdm_layers(self) for p in layer.parameters()}  # type: ignore[arg-type]
        return [p for p in self.parameters() if id(p) not in local]  # type: ignore[attr-defined]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(
            pdm_kwargs=self.pdm_config.to_dict(),
            share_trunk=self.share_trunk,
            skip_to_heads=self.skip_to_heads,
            value_norm_rate=self.value_norm_rate,
            actor_pdm_kwargs=self.actor_pdm_kwargs,
            head_input_norm_rate=self.head_input_norm_rate,
            head_follow=self.head_follow,
            action_code=self.action_code,
            head_input_gain=self.head_input_gain,
            value_loss_units=self.value_loss_units,
        )
        return data

    # --- reward-driven guidance -------------------------------------------------------------------------------

    def _actor_signal(self, signals: GuidanceSignals, standardize: bool = True) -> th.Tensor:
        """
        Advantage-weighted action code: states where an action helped lie apart from where it hurt. With
        ``action_code="centered"`` a discrete action's one-hot code is taken minus ``1 / n`` (per block for
        MultiDiscrete), so that an action that hurt points towards the others.

        :param signals: The minibatch's signals.
        :param standardize: Advantages standardised over the minibatch (else raw, for ``normalization="running"``).
        """
        actions = signals.actions
        centered = self.action_code == "centered"
        if isinstance(self.action_space, spaces.Discrete):
            code = _one_hot(actions.long().flatten(), int(self.action_space.n), centered)
        elif isinstance(self.action_space, spaces.MultiDiscrete):
            columns = actions.long().reshape(len(actions), -1).unbind(dim=1)
            code = th.cat([_one_hot(col, int(n), centered) for col, n in zip(columns, self.action_space.nvec)], dim=1)
        elif isinstance(self.action_space, spaces.MultiBinary):
            code = 2.0 * actions.float().reshape(len(actions), -1) - 1.0
        else:
            code = actions.float().reshape(len(actions), -1)
        advantages = _standardize(signals.advantages) if standardize else signals.advantages.float().flatten()
        return advantages[:, None] * code

    @contextmanager
    def _guided(self, obs: PyTorchObs) -> Iterator[None]:
        """
        Prepare one training forward pass: move the value head's return statistics (``value_norm_rate``), give each
        PDM layer the guidance signal of its role, hold the layers fixed in the passes over the rollout beyond
        ``local_epochs``, and tell them when a new rollout starts (``max_feature_move``).
        """
        if not (self.training and th.is_grad_enabled()):
            yield
            return
        actor_layers, critic_layers, shared_layers = self._guidance_roles
        layers = actor_layers + critic_layers + shared_layers
        signals = read_signals(obs)
        value_head = normalized_value_head(self.value_net)
        guided = [layer for layer in layers if layer.config.guidance_coef > 0]
        counted = [layer for layer in layers if layer.config.local_epochs is not None]
        limited = any(layer.config.max_feature_move is not None for layer in layers)
        if signals is None:
            if value_head is not None or guided or counted or limited:
                self._warn_missing_signals()
            yield
            return
        if value_head is not None:
            value_head.update(signals.returns)
        if signals.rollout is not None and signals.rollout != self._pdm_rollout:
            self._pdm_rollout = signals.rollout
            for layer in layers:
                layer.begin_rollout()
        fixed = [layer for layer in counted if signals.epoch >= layer.config.local_epochs]  # type: ignore[operator]
        with _held_fixed(fixed):
            if not guided:
                yield
                return
            # Standardised over the minibatch; raw for layers that normalise distances by running means, so that a
            # minibatch whose returns (or advantages) differ less than usual guides less. Only the kinds in use; the
            # raw ones also give the spread that sets the step size of layers with guidance_gate.
            gated = any(layer.config.guidance_gate for layer in guided)
            kinds = {layer.config.normalization != "running" for layer in layers} | ({False} if gated else set())
            critic = {
                k: _standardize(signals.returns.flatten())[:, None] if k else signals.returns.float().reshape(-1, 1)
                for k in kinds
            }
            actor = {k: self._actor_signal(signals, k) for k in kinds}
            # Shared trunks and features extractors serve both heads: they get both signals.
            assignments = [
                (actor_layers, actor),
                (critic_layers, critic),
                (shared_layers, {k: th.cat([critic[k], actor[k]], dim=1) for k in kinds}),
            ]
            try:
                for group, signal in assignments:
                    spread = _spread(signal[False]) if gated and group else None
                    for layer in group:
                        layer.set_guidance(
                            signal[layer.config.normalization != "running"], spread if layer.config.guidance_gate else None
                        )
                yield
            finally:
                for layer in layers:
                    layer.set_guidance(None)

    def _warn_missing_signals(self) -> None:
        self._n_missing_guidance += 1
        if not self._warned_missing_guidance:
            self._warned_missing_guidance = True
            warnings.warn(
                "PDM guidance is on (guidance_coef > 0), local_epochs or max_feature_move is set or the value head is "
                "normalised (value_norm_rate), but the minibatch carries no returns/advantages/epoch: the PDM layers "
                "train on input geometry alone, in every epoch, with no move limit, and the value head's statistics "
                "stay at 0 and 1. Pass "
                "rollout_buffer_class=PDMRolloutBuffer (PDMDictRolloutBuffer for Dict observations) to the algorithm, "
                "or callback=PDMCallback() to learn().",
                stacklevel=5,
            )

    def evaluate_actions(self, obs: PyTorchObs, actions: th.Tensor, *args: Any, **kwargs: Any) -> Any:
        with self._guided(obs):
            return super().evaluate_actions(obs, actions, *args, **kwargs)  # type: ignore[misc]

    def get_distribution(self, obs: PyTorchObs, *args: Any, **kwargs: Any) -> Any:
        with self._guided(obs):
            return super().get_distribution(obs, *args, **kwargs)  # type: ignore[misc]

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        with self._guided(obs):
            return super().predict_values(obs)  # type: ignore[misc]

    def pop_missing_guidance(self) -> int:
        """Training forward passes since the last call that had guidance on but no signals."""
        count, self._n_missing_guidance = self._n_missing_guidance, 0
        return count


for _attribute, _reason in _UNSUPPORTED_ATTRIBUTES.items():
    setattr(PDMActorCriticMixin, _attribute, _unsupported(_attribute, _reason))


@contextmanager
def _held_fixed(layers: list[PDMLayer]) -> Iterator[None]:
    """Switch off the local learning of ``layers`` for the duration of the block (frozen layers stay frozen)."""
    previous = [layer.local_learning for layer in layers]
    try:
        for layer in layers:
            layer.local_learning = False
        yield
    finally:
        for layer, value in zip(layers, previous):
            layer.local_learning = value


def _spread(signals: th.Tensor) -> th.Tensor:
    """Spread of per-sample signals ``(B, k)``: the root of their summed per-dimension variances over the batch."""
    return signals.var(dim=0, unbiased=False).sum().sqrt()


def _one_hot(actions: th.Tensor, n: int, centered: bool) -> th.Tensor:
    """One-hot codes of ``n`` discrete actions; ``centered``: minus ``1 / n``, their mean under a uniform choice."""
    code = F.one_hot(actions, n).float()
    return code - 1.0 / n if centered else code


def _standardize(values: th.Tensor) -> th.Tensor:
    values = values.float()
    return (values - values.mean()) / (values.std(unbiased=False) + 1e-8)


class PDMPolicy(PDMActorCriticMixin, ActorCriticPolicy):
    """
    Actor-critic policy whose hidden layers learn by local pairwise distance matching (PDM), for PPO, A2C and
    TRPO. Arguments are those of SB3's ``ActorCriticPolicy`` plus the PDM options below; ``net_arch`` and
    ``activation_fn`` mean what they mean in SB3 (default ``dict(pi=[64, 64], vf=[64, 64])``, ``nn.Tanh``).

    The actor and critic trunks are made of :class:`sb3_pdm.PDMLinear` layers; ``policy.optimizer`` holds only
    the action head, ``log_std`` and the value head. For reward-driven guidance, pass
    ``rollout_buffer_class=PDMRolloutBuffer`` to the algorithm or ``callback=PDMCallback()`` to ``learn()``.

    :param observation_space: Observation space.
    :param action_space: Action space (Box, Discrete, MultiDiscrete or MultiBinary).
    :param lr_schedule: Learning rate schedule of the heads.
    :param net_arch: Trunk widths: a list (separate actor and critic trunks of that shape) or
        ``dict(pi=[...], vf=[...])``.
    :param activation_fn: Activation class (or name: ``"tanh"``, ``"relu"``, ...).
    :param features_extractor_class: Features extractor; PDM extractors get ``pdm_kwargs`` by default.
    :param features_extractor_kwargs: Its keyword arguments.
    :param pdm_kwargs: Local learning options, see :class:`sb3_pdm.PDMConfig`.
    :param share_trunk: One trunk for actor and critic (``net_arch`` a list).
    :param skip_to_heads: The heads read the features extractor's output next to the last PDM layer's.
    :param value_norm_rate: If set, the value head predicts returns in units of running statistics of the returns
        (:class:`sb3_pdm.heads.NormalizedValueHead`, PopArt-style), which move by this rate at every training
        minibatch (default 0.01); needs ``PDMRolloutBuffer`` or ``PDMCallback``. ``None``: SB3's plain linear head.
    :param actor_pdm_kwargs: Options of the actor trunk's layers that differ from ``pdm_kwargs`` (e.g.
        ``dict(local_lr=3e-5)``); separate trunks only. ``None`` (default): the actor trunk uses ``pdm_kwargs``.
    :param head_input_norm_rate: If set, the action and value heads read their features standardised per unit by
        running statistics (:class:`sb3_pdm.heads.InputNormalizedHead`), which move by this rate at every training
        minibatch; ``dict(vf=0.01)`` (or ``dict(pi=...)``) standardises one head's features only, as ``net_arch``
        names the trunks. ``None`` (default): the heads read the features as they are.
    :param head_follow: Heads that follow their trunk's local steps: ``"pi"`` (the action head), ``"vf"`` (the value
        head) or both in a list. In each training pass in which the trunk's layers step, the head's linear map is
        corrected so that its output on the minibatch stays what it was before the steps (ridge least squares,
        :func:`sb3_pdm.heads.follow_trunk`), and the algorithm's loss reads the moved features: the policy then changes
        through the head only, under the algorithm's own step limits (PPO's clip), not by the trunk's local steps. It
        costs one more pass of the trunk and a ``(d + 1) x (d + 1)`` solve per training pass. The correction uses the
        head's own (detached) inputs; no gradient reaches a hidden layer. ``None`` (default): the heads do not follow.
    :param action_code: How the actor trunk's guidance codes a discrete action (Discrete, MultiDiscrete) before
        weighting it by the advantage: ``"onehot"`` (default) or ``"centered"``, the one-hot code minus ``1 / n``.
        With one-hot codes, "this action helped" and "the other action hurt" lie far apart though both favour the same
        action; centred, they lie close (on two actions, at the same point). MultiBinary (``2a - 1``) and Box codes are
        the same either way.
    :param head_input_gain: If set, the action and value heads read their features multiplied by this fixed factor
        (:class:`sb3_pdm.heads.ScaledInputHead`; their initial outputs unchanged), so that the algorithm's optimizer
        moves them as fast as on features of per-unit std ``gain * feature_scale``; ``dict(pi=...)`` or ``dict(vf=...)``
        for one head. Not together with ``head_input_norm_rate`` on the same head. ``None`` (default): the heads read
        the features as they are.
    :param value_loss_units: Units in which the normalised value head (``value_norm_rate``) takes the value loss's
        gradient: ``"returns"`` (default), ``"linear"`` (divided by the returns' running std: the gradient SB3's plain
        linear value head gets for the same outputs) or ``"normalized"``, the units of its normalised targets, as in
        PopArt (divided by the returns' running variance). Its outputs are the same either way; what changes most is its
        share of the algorithm's gradient-norm clip, which the action head shares. Needs ``value_norm_rate``.
    :param kwargs: Other ``ActorCriticPolicy`` arguments (``ortho_init``, ``log_std_init``, ``optimizer_class``, ...).
    """


class CnnPDMPolicy(PDMPolicy):
    """
    :class:`PDMPolicy` for image observations: :class:`sb3_pdm.PDMNatureCNN` features, no hidden trunk by
    default (as SB3's ``CnnPolicy``). Arguments as :class:`PDMPolicy`.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] = PDMNatureCNN,
        normalize_images: bool = True,
        **kwargs: Any,
    ) -> None:
        if features_extractor_class is PDMNatureCNN and not is_image_space(
            observation_space, check_channels=False, normalized_image=not normalize_images
        ):
            raise ValueError(f"CnnPDMPolicy needs image observations, got {observation_space}: use PDMPolicy instead")
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[] if net_arch is None else net_arch,
            features_extractor_class=features_extractor_class,
            normalize_images=normalize_images,
            **kwargs,
        )


class MultiInputPDMPolicy(PDMPolicy):
    """
    :class:`PDMPolicy` for ``Dict`` observations: :class:`sb3_pdm.PDMCombinedExtractor` features (PDM CNNs for
    image keys, flattened vectors otherwise), then PDM trunks. Arguments as :class:`PDMPolicy`.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        features_extractor_class: type[BaseFeaturesExtractor] = PDMCombinedExtractor,
        **kwargs: Any,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise ValueError(f"MultiInputPDMPolicy needs a Dict observation space, got {observation_space}: use PDMPolicy")
        super().__init__(
            observation_space, action_space, lr_schedule, features_extractor_class=features_extractor_class, **kwargs
        )
