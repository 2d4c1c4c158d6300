"""PDM trunks: the hidden layers between the features extractor and the action/value heads."""

import torch as th
from torch import nn

from sb3_pdm.config import PDMConfig, check_sizes, resolve_activation
from sb3_pdm.layers import PDMLinear


def build_pdm_mlp(in_features: int, widths: list[int], activation_fn: type[nn.Module], config: PDMConfig) -> nn.Sequential:
    """A stack of :class:`PDMLinear` layers of the given widths (an empty stack is the identity)."""
    layers = []
    for width in widths:
        layers.append(PDMLinear(in_features, width, activation_fn, config))
        in_features = width
    return nn.Sequential(*layers)


class PDMMlpExtractor(nn.Module):
    """
    Actor and critic trunks made of :class:`PDMLinear` layers, with the interface of SB3's ``MlpExtractor``
    (``latent_dim_pi``, ``latent_dim_vf``, ``forward_actor``, ``forward_critic``).

    :param feature_dim: Size of the features from the features extractor.
    :param net_arch: A list of widths (the same architecture for separate actor and critic trunks, as in SB3) or
        ``dict(pi=[...], vf=[...])``.
    :param activation_fn: Activation class (or name).
    :param config: Local learning options.
    :param share_trunk: One trunk for actor and critic (``net_arch`` must then be a list).
    :param actor_config: Local learning options of the actor trunk's layers (default: ``config``); separate trunks only.
    """

    def __init__(
        self,
        feature_dim: int,
        net_arch: list[int] | dict[str, list[int]],
        activation_fn: str | type[nn.Module],
        config: PDMConfig,
        share_trunk: bool = False,
        actor_config: PDMConfig | None = None,
    ) -> None:
        super().__init__()
        activation_fn = resolve_activation(activation_fn)
        if isinstance(net_arch, dict):
            unknown = set(net_arch) - {"pi", "vf"}
            if unknown:
                raise ValueError(f"net_arch dict accepts the keys 'pi' and 'vf', got unknown keys {sorted(unknown)}")
            if share_trunk:
                raise ValueError("share_trunk=True needs net_arch as a list of widths, not a dict(pi=..., vf=...)")
            pi_arch, vf_arch = list(net_arch.get("pi", [])), list(net_arch.get("vf", []))
        elif isinstance(net_arch, (list, tuple)):
            pi_arch = vf_arch = list(net_arch)
        else:
            raise TypeError(f"net_arch must be a list of widths or dict(pi=[...], vf=[...]), got {net_arch!r}")
        check_sizes(pi_arch, "net_arch['pi']" if isinstance(net_arch, dict) else "net_arch")
        check_sizes(vf_arch, "net_arch['vf']" if isinstance(net_arch, dict) else "net_arch")
        if share_trunk and actor_config is not None:
            raise ValueError("actor_pdm_kwargs needs separate actor and critic trunks, not share_trunk=True")
        self.share_trunk = share_trunk
        self.policy_net = build_pdm_mlp(feature_dim, pi_arch, activation_fn, actor_config or config)
        self.value_net = self.policy_net if share_trunk else build_pdm_mlp(feature_dim, vf_arch, activation_fn, config)
        self.latent_dim_pi = pi_arch[-1] if pi_arch else feature_dim
        self.latent_dim_vf = vf_arch[-1] if vf_arch else feature_dim

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        if self.share_trunk:
            # One pass, so the shared layers take one local step per batch.
            latent = self.policy_net(features)
            return latent, latent
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        return self.policy_net(features)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.value_net(features)
