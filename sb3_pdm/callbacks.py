"""``PDMCallback``: connects a PDM policy to its algorithm (guidance signals, local lr schedule, logging)."""

import warnings

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from torch import nn

from sb3_pdm.guidance import enable_guidance
from sb3_pdm.heads import NormalizedValueHead
from sb3_pdm.layers import PDMLayer, pdm_layers
from sb3_pdm.policies import PDMActorCriticMixin


def layer_names(policy: nn.Module) -> dict[str, str]:
    """Short logger names of the PDM layers of ``policy`` (``pi/0``, ``vf/1``, ``features/2``, ...), by module path."""
    prefixes = {"mlp_extractor.policy_net.": "pi/", "mlp_extractor.value_net.": "vf/"}
    names: dict[str, str] = {}
    counters: dict[str, int] = {}
    for path, module in policy.named_modules():
        if not isinstance(module, PDMLayer):
            continue
        group = next((short for prefix, short in prefixes.items() if path.startswith(prefix)), "features/")
        if getattr(policy, "share_trunk", False) and group in ("pi/", "vf/"):
            group = "shared/"
        names[path] = f"{group}{counters.setdefault(group, 0)}"
        counters[group] += 1
    return names


def named_layers(policy: nn.Module) -> list[tuple[str, PDMLayer]]:
    """The PDM layers of ``policy`` with their short logger names (:func:`layer_names`), in registration order."""
    modules = dict(policy.named_modules())
    return [(name, modules[path]) for path, name in layer_names(policy).items()]  # type: ignore[misc]


def record_diagnostics(policy: nn.Module, logger: Logger, layers: list[tuple[str, PDMLayer]] | None = None) -> None:
    """
    Record under ``pdm/`` each PDM layer's local loss, feature scale and skipped (and held) steps since the last call,
    and a normalised value head's return statistics and skipped non-finite updates (``pdm/value_mean``,
    ``pdm/value_std``, ``pdm/value_skipped``).

    :param policy: A policy (or any module) holding PDM layers.
    :param logger: SB3 logger.
    :param layers: ``named_layers(policy)``, if the caller keeps it (found again otherwise).
    """
    for name, layer in named_layers(policy) if layers is None else layers:
        stats = layer.pop_diagnostics()
        # A held layer took its rollout's first step: "updates" covers max_feature_move too.
        if stats["updates"] == 0 and stats["skipped"] == 0:
            continue
        logger.record(f"pdm/{name}/loss", stats["loss"])
        logger.record(f"pdm/{name}/feature_scale", stats["feature_scale"])
        logger.record(f"pdm/{name}/skipped", stats["skipped"])
        if "held" in stats:
            logger.record(f"pdm/{name}/held", stats["held"])
    value_net = getattr(policy, "value_net", None)
    if isinstance(value_net, NormalizedValueHead):
        logger.record("pdm/value_mean", value_net.mean.item())
        logger.record("pdm/value_std", value_net.std.item())
        logger.record("pdm/value_skipped", value_net.pop_skipped())
    if hasattr(policy, "pop_missing_guidance"):
        logger.record("pdm/guidance_missing", policy.pop_missing_guidance())


class PDMCallback(BaseCallback):
    """
    Connects a policy with PDM layers to its on-policy algorithm, with no other change to the user's code:

    - makes the algorithm's rollout buffer carry returns, advantages and actions to the PDM layers (guidance);
    - updates the local learning rate from its schedule at each rollout;
    - records per-layer diagnostics under ``pdm/`` in the SB3 logger, on the cadence of SB3's ``train/`` metrics.

    Usable from Python (``model.learn(..., callback=PDMCallback())``) or from an RL-Zoo hyperparameter file
    (``callback: sb3_pdm.PDMCallback``).

    :param verbose: Verbosity level.
    """

    def _init_callback(self) -> None:
        if not isinstance(self.model, OnPolicyAlgorithm):
            raise TypeError(
                f"PDMCallback serves on-policy algorithms (PPO, A2C, TRPO, MaskablePPO), got {type(self.model).__name__}"
            )
        policy = self.model.policy
        if not pdm_layers(policy):
            if isinstance(policy, PDMActorCriticMixin):
                raise ValueError(
                    f"PDMCallback found no PDM layer in {type(policy).__name__}: net_arch=[] (or dict(pi=[], vf=[])) "
                    "leaves no hidden layer, and the features extractor is not a PDM one. Give the trunks widths "
                    "(e.g. net_arch=[64, 64]), or use a PDM features extractor; without PDM layers, train without "
                    "PDMCallback."
                )
            raise ValueError(f"PDMCallback needs a policy with PDM layers, got {type(policy).__name__}")
        if not isinstance(policy, PDMActorCriticMixin):
            warnings.warn(
                f"PDMCallback serves the PDM layers of a {type(policy).__name__}, which is not a PDM policy: they get "
                "no guidance signals and ignore local_epochs and max_feature_move (the callback still drives the local "
                "learning-rate schedule and logs). Use PDMPolicy, CnnPDMPolicy, MultiInputPDMPolicy or "
                "MaskablePDMPolicy for the full method.",
                stacklevel=2,
            )
        enable_guidance(self.model.rollout_buffer)
        # A policy's layers are fixed once it is built: found once, not at every rollout (A2C's are a few steps long).
        self._layers = named_layers(self.model.policy)

    def _on_rollout_start(self) -> None:
        for _, layer in self._layers:
            layer.set_progress(self.model._current_progress_remaining)

    def _on_rollout_end(self) -> None:
        # SB3 dumps its logs after collecting a rollout and before train(): the stats of the previous train()
        # appear next to its train/ metrics.
        record_diagnostics(self.model.policy, self.logger, self._layers)

    def _on_step(self) -> bool:
        return True
