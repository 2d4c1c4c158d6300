"""
PDM features extractors: drop-in replacements of SB3's ``FlattenExtractor``/MLP, ``NatureCNN`` and
``CombinedExtractor`` whose layers learn locally. Usable through the PDM policies or alone, as
``features_extractor_class`` of a stock SB3 policy.
"""

import warnings
from typing import Any

import gymnasium as gym
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from sb3_pdm.config import PDMConfig, check_sizes, resolve_activation
from sb3_pdm.layers import PDMConv2d, PDMLinear
from sb3_pdm.objective import natural_target_scale
from sb3_pdm.trunks import build_pdm_mlp


class PDMFeaturesExtractor(BaseFeaturesExtractor):
    """
    Base of the PDM features extractors. Inside a PDM policy, the policy gives their layers guidance signals, counts
    the passes over each rollout (``local_epochs``) and announces rollouts (``max_feature_move``). Inside a stock SB3
    policy nobody does: the layers train on input geometry alone, in every pass, with no move limit, and the first
    training pass warns once.
    """

    #: Set by the PDM policy that holds the extractor.
    served_by_policy = False
    _warned_unserved = False

    def _check_served(self) -> None:
        if self.served_by_policy or self._warned_unserved or not (self.training and th.is_grad_enabled()):
            return
        self._warned_unserved = True
        warnings.warn(
            f"{type(self).__name__} is not inside a PDM policy, so its layers get no guidance signals and ignore "
            "local_epochs and max_feature_move (even with PDMCallback): they train on input geometry alone, in every "
            "pass over the rollout. Use PDMPolicy, CnnPDMPolicy or MultiInputPDMPolicy (or MaskablePDMPolicy) to have "
            "them served.",
            stacklevel=3,
        )


class PDMMlpFeaturesExtractor(PDMFeaturesExtractor):
    """
    Flattens the observation and passes it through :class:`PDMLinear` layers.

    :param observation_space: Observation space (any space SB3 can flatten).
    :param net_arch: Widths of the PDM layers; the last one is ``features_dim``.
    :param activation_fn: Activation class (or name).
    :param pdm_kwargs: Local learning options (see :class:`sb3_pdm.PDMConfig`).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        net_arch: list[int] | None = None,
        activation_fn: str | type[nn.Module] = nn.Tanh,
        pdm_kwargs: PDMConfig | dict[str, Any] | None = None,
    ) -> None:
        net_arch = [64] if net_arch is None else list(net_arch)
        check_sizes(net_arch, "net_arch")
        if not net_arch:
            raise ValueError("net_arch must hold at least one width for PDMMlpFeaturesExtractor")
        super().__init__(observation_space, net_arch[-1])
        self.flatten = nn.Flatten()
        config = PDMConfig.from_kwargs(pdm_kwargs)
        self.mlp = build_pdm_mlp(get_flattened_obs_dim(observation_space), net_arch, resolve_activation(activation_fn), config)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        self._check_served()
        return self.mlp(self.flatten(observations))


class PDMNatureCNN(PDMFeaturesExtractor):
    """
    The CNN of SB3's ``NatureCNN`` (Mnih et al. 2015) made of :class:`PDMConv2d` layers and a final
    :class:`PDMLinear`. Expects channel-first images, as ``NatureCNN``.

    :param observation_space: Image observation space.
    :param features_dim: Output size (units of the final dense PDM layer).
    :param normalized_image: Whether images are already normalised (disables the uint8/bounds check).
    :param activation_fn: Activation class (or name).
    :param pdm_kwargs: Local learning options (see :class:`sb3_pdm.PDMConfig`).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 512,
        normalized_image: bool = False,
        activation_fn: str | type[nn.Module] = nn.ReLU,
        pdm_kwargs: PDMConfig | dict[str, Any] | None = None,
    ) -> None:
        if not (
            isinstance(observation_space, spaces.Box)
            and is_image_space(observation_space, check_channels=False, normalized_image=normalized_image)
        ):
            raise ValueError(
                f"PDMNatureCNN needs an image observation space (channel-first Box, uint8 in [0, 255] unless "
                f"normalized_image=True), got {observation_space}. Use PDMPolicy for vector observations."
            )
        check_sizes([features_dim], "features_dim")
        super().__init__(observation_space, features_dim)
        config = PDMConfig.from_kwargs(pdm_kwargs)
        activation_fn = resolve_activation(activation_fn)
        sample = th.as_tensor(observation_space.sample()[None]).float()
        convs = []
        for out_channels, kernel_size, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            conv = PDMConv2d(sample.shape[1], out_channels, kernel_size, stride, activation_fn=activation_fn, config=config)
            with th.no_grad():
                sample = conv(sample)
            # Scale the targets by the real flattened size of this layer's output.
            conv.target_scale = natural_target_scale(config.distance, config.feature_scale, sample[0].numel())
            convs.append(conv)
        self.cnn = nn.Sequential(*convs, nn.Flatten())
        self.linear = PDMLinear(sample[0].numel(), features_dim, activation_fn, config)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        self._check_served()
        return self.linear(self.cnn(observations))


class PDMCombinedExtractor(PDMFeaturesExtractor):
    """
    For ``Dict`` observations, as SB3's ``CombinedExtractor``: image keys go through :class:`PDMNatureCNN`,
    vector keys are flattened; the results are concatenated.

    :param observation_space: ``Dict`` observation space.
    :param cnn_output_dim: Features per image key.
    :param normalized_image: Whether images are already normalised.
    :param activation_fn: Activation class (or name) of the CNNs.
    :param pdm_kwargs: Local learning options (see :class:`sb3_pdm.PDMConfig`).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        cnn_output_dim: int = 256,
        normalized_image: bool = False,
        activation_fn: str | type[nn.Module] = nn.ReLU,
        pdm_kwargs: PDMConfig | dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise ValueError(f"PDMCombinedExtractor needs a Dict observation space, got {observation_space}")
        check_sizes([cnn_output_dim], "cnn_output_dim")
        super().__init__(observation_space, features_dim=1)
        extractors: dict[str, nn.Module] = {}
        total = 0
        for key, subspace in observation_space.spaces.items():
            if is_image_space(subspace, normalized_image=normalized_image):
                extractors[key] = PDMNatureCNN(subspace, cnn_output_dim, normalized_image, activation_fn, pdm_kwargs)
                total += cnn_output_dim
            else:
                extractors[key] = nn.Flatten()
                total += get_flattened_obs_dim(subspace)
        self.extractors = nn.ModuleDict(extractors)
        self._features_dim = total

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        self._check_served()
        return th.cat([extractor(observations[key]) for key, extractor in self.extractors.items()], dim=1)
