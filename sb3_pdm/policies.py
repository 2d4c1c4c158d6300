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

from sb3_pdm.config import PDMConfig, drop_removed_options, resolve_activation
from sb3_pdm.extractors import PDMCombinedExtractor, PDMFeaturesExtractor, PDMNatureCNN
from sb3_pdm.guidance import GuidanceSignals, read_signals
from sb3_pdm.heads import NormalizedValueHead, check_value_norm_rate
from sb3_pdm.layers import PDMLayer, pdm_layers
from sb3_pdm.trunks import PDMMlpExtractor

#: Default hidden widths of the actor and critic trunks (of the one trunk with ``share_trunk=True``).
DEFAULT_NET_ARCH = dict(pi=[64, 64], vf=[64, 64])
DEFAULT_SHARED_NET_ARCH = [64, 64]
#: Policy options of earlier versions that the project's ablations rejected, with the value that left each one off.
REMOVED_POLICY_OPTIONS: dict[str, Any] = {
    "skip_to_heads": False,
    "head_input_norm_rate": None,
    "head_follow": None,
    "action_code": "onehot",
    "head_input_gain": None,
    "value_loss_units": "returns",
}

_SUPPORTED_ACTIONS = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_OFF_POLICY = "off-policy actor-critic algorithms (SAC, TD3, DDPG, TQC, CrossQ) need their own actor/critic policy"
# What other algorithms look up on their policy, and why a PDM policy cannot serve them.
_UNSUPPORTED_ATTRIBUTES = {
    "q_net": "DQN-style algorithms need a Q-network policy",
    "q_net_target": "DQN-style algorithms need a Q-network policy",
    "actor": _OFF_POLICY,
    "actor_target": _OFF_POLICY,
    "critic": _OFF_POLICY,
    "critic_target": _OFF_POLICY,
    "lstm_actor": (
        "RecurrentPPO needs LSTM layers trained through time by backpropagation; a PDM layer's local loss compares "
        "samples of one minibatch and has no recurrent form in sb3_pdm"
    ),
}


class PDMActorCriticMixin:
    """
    Turns an SB3 actor-critic policy class into a PDM policy (see :class:`PDMPolicy` for the arguments). Shared by
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
        value_norm_rate: float | None = 0.01,
        actor_pdm_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs = drop_removed_options(kwargs, REMOVED_POLICY_OPTIONS)
        self.pdm_config = PDMConfig.from_kwargs(pdm_kwargs)
        if actor_pdm_kwargs is not None and not isinstance(actor_pdm_kwargs, dict):
            raise TypeError(f"actor_pdm_kwargs must be a dict of PDMConfig options or None, got {actor_pdm_kwargs!r}")
        self.actor_pdm_kwargs = actor_pdm_kwargs
        self.actor_pdm_config = (
            None if actor_pdm_kwargs is None else PDMConfig.from_kwargs({**self.pdm_config.to_dict(), **actor_pdm_kwargs})
        )
        if not isinstance(share_trunk, bool):
            raise TypeError(f"share_trunk must be a bool, got {share_trunk!r}")
        self.share_trunk = share_trunk
        if value_norm_rate is not None:
            check_value_norm_rate(value_norm_rate)
        self.value_norm_rate = value_norm_rate
        self._warned_missing_guidance = False
        self._n_missing_guidance = 0
        # The last rollout number seen in a minibatch's signals: a new one starts the layers' moves (max_feature_move).
        self._pdm_rollout: int | None = None
        if not isinstance(action_space, _SUPPORTED_ACTIONS):
            raise ValueError(
                f"Unsupported action space {action_space}: PDM policies accept "
                f"{', '.join(space.__name__ for space in _SUPPORTED_ACTIONS)}"
            )
        self._check_observation_space(observation_space, features_extractor_class)
        features_extractor_kwargs = dict(features_extractor_kwargs or {})
        if issubclass(features_extractor_class, PDMFeaturesExtractor):
            # PDM extractors learn with the policy's options unless told otherwise.
            features_extractor_kwargs.setdefault("pdm_kwargs", self.pdm_config.to_dict())
        if net_arch is None:
            net_arch = DEFAULT_SHARED_NET_ARCH if share_trunk else DEFAULT_NET_ARCH
        super().__init__(  # type: ignore[call-arg]
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=resolve_activation(activation_fn),
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            **kwargs,
        )

    def __getattr__(self, name: str) -> Any:
        # nn.Module resolves parameters, buffers and submodules here. The attributes that other algorithms look up on
        # their policy get an AttributeError that says why (so that hasattr() is False).
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            if name in _UNSUPPORTED_ATTRIBUTES:
                raise AttributeError(
                    f"{type(self).__name__} is an on-policy actor-critic policy (PPO, A2C, TRPO; MaskablePPO through "
                    f"MaskablePDMPolicy) and has no '{name}': {_UNSUPPORTED_ATTRIBUTES[name]}."
                ) from None
            raise

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
            self.actor_pdm_config,
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        if self.value_norm_rate is not None:
            # Wraps the initialised linear head: same parameters, outputs in the units of the returns' statistics.
            self.value_net = NormalizedValueHead(self.value_net, self.value_norm_rate)
        # The algorithm's optimizer holds the head parameters only: PDM layers have their own local optimizers.
        self.optimizer = self.optimizer_class(  # type: ignore[attr-defined]
            self.head_parameters(),
            lr=lr_schedule(1),
            **self.optimizer_kwargs,  # type: ignore[attr-defined]
        )
        # PDM features extractors inside this policy get their guidance, passes and rollouts from it.
        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, PDMFeaturesExtractor):
                module.served_by_policy = True
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
            value_norm_rate=self.value_norm_rate,
            actor_pdm_kwargs=self.actor_pdm_kwargs,
        )
        return data

    # --- reward-driven guidance -------------------------------------------------------------------------------

    def _actor_signal(self, signals: GuidanceSignals) -> th.Tensor:
        """
        Advantage-weighted action code (one-hot for discrete actions, ``2a - 1`` for binary ones, the action itself for
        continuous ones), with advantages standardised over the minibatch: states where an action helped lie apart
        from where it hurt.
        """
        actions = signals.actions
        if isinstance(self.action_space, spaces.Discrete):
            code = F.one_hot(actions.long().flatten(), int(self.action_space.n)).float()
        elif isinstance(self.action_space, spaces.MultiDiscrete):
            columns = actions.long().reshape(len(actions), -1).unbind(dim=1)
            code = th.cat([F.one_hot(col, int(n)).float() for col, n in zip(columns, self.action_space.nvec)], dim=1)
        elif isinstance(self.action_space, spaces.MultiBinary):
            code = 2.0 * actions.float().reshape(len(actions), -1) - 1.0
        else:
            code = actions.float().reshape(len(actions), -1)
        return _standardize(signals.advantages)[:, None] * code

    @contextmanager
    def _guided(self, obs: PyTorchObs) -> Iterator[None]:
        """
        Prepare one training forward pass: move the value head's return statistics (``value_norm_rate``), give each
        PDM layer the guidance signal of its role (actor trunk: advantage-weighted actions; critic trunk: returns;
        shared layers: both), hold the layers fixed in the passes over the rollout beyond ``local_epochs``, and tell
        them when a new rollout starts (``max_feature_move``).
        """
        if not (self.training and th.is_grad_enabled()):
            yield
            return
        actor_layers, critic_layers, shared_layers = self._guidance_roles
        layers = actor_layers + critic_layers + shared_layers
        signals = read_signals(obs)
        value_head = self.value_net if isinstance(self.value_net, NormalizedValueHead) else None
        guided = any(layer.config.guidance_coef > 0 for layer in layers)
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
            critic = _standardize(signals.returns)[:, None]
            actor = self._actor_signal(signals)
            both = th.cat([critic, actor], dim=1)
            try:
                for group, signal in ((actor_layers, actor), (critic_layers, critic), (shared_layers, both)):
                    for layer in group:
                        layer.set_guidance(signal)
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
                "stay at 0 and 1. Pass rollout_buffer_class=PDMRolloutBuffer (PDMDictRolloutBuffer for Dict "
                "observations) to the algorithm, or callback=PDMCallback() to learn().",
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


def _standardize(values: th.Tensor) -> th.Tensor:
    """A minibatch's returns or advantages, flattened and standardised over the minibatch."""
    values = values.float().flatten()
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
    :param share_trunk: One trunk for actor and critic (``net_arch`` a list; default ``[64, 64]``).
    :param value_norm_rate: If set, the value head predicts returns in units of running statistics of the returns
        (:class:`sb3_pdm.heads.NormalizedValueHead`, PopArt-style), which move by this rate at every training
        minibatch (default 0.01); needs ``PDMRolloutBuffer`` or ``PDMCallback``. ``None``: SB3's plain linear head.
    :param actor_pdm_kwargs: Options of the actor trunk's layers that differ from ``pdm_kwargs`` (e.g.
        ``dict(local_lr=3e-5)``); separate trunks only. ``None`` (default): the actor trunk uses ``pdm_kwargs``.
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
