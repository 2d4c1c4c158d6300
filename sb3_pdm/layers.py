"""
PDM layers: torch modules that train themselves by a local pairwise-distance-matching loss in their forward pass.

No gradient ever leaves a PDM layer: its output is always detached, so the RL loss of the heads cannot reach its
parameters, and its local loss only sees its own (detached) input and output (``docs/method.md``).
"""

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch as th
import torch.nn.functional as F
from torch import nn

from sb3_pdm.config import PDMConfig, resolve_activation
from sb3_pdm.objective import GUIDANCE_DISTANCE, natural_target_scale, pairwise_distances, pdm_loss_and_grad, target_distances


class PDMLayer(nn.Module):
    """
    Base class of a layer trained by local pairwise distance matching.

    In training mode with autograd enabled, ``forward``:

    1. computes the output from the detached input,
    2. skips the step where the layer has moved ``max_feature_move`` on this rollout (:meth:`_moved_too_far`),
    3. builds the target distances from the input's pairwise distances and, with guidance, those of the signals set by
       :meth:`set_guidance` (:meth:`_targets`),
    4. steps the layer's own optimizer on the local loss (:meth:`_local_step`),
    5. returns the output (computed before the step), detached.

    In eval mode or under ``torch.no_grad()`` the parameters never change. A batch with fewer than two samples or a
    non-finite loss skips the step (counted in :meth:`pop_diagnostics`).

    Subclasses build their parameters in ``__init__``, implement :meth:`transform` and :meth:`_transform_with`, then
    call :meth:`_build_optimizer`.

    :param out_features: Number of output features per sample (the width used to scale the targets).
    :param config: Local learning options.
    """

    def __init__(self, out_features: int, config: PDMConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else PDMConfig()
        self.target_scale = natural_target_scale(self.config.distance, self.config.feature_scale, out_features)
        # Off for the frozen control (config.local_learning) and, per pass over a rollout, beyond local_epochs.
        self.local_learning = self.config.local_learning
        self._guidance: th.Tensor | None = None
        # A scheduled local rate needs someone (PDMCallback) to call set_progress; warned once if nobody does.
        self._progress_driven = not self.config.scheduled
        # max_feature_move: the parameters when the current rollout began (begin_rollout); None when no rollout was
        # announced, and then no limit applies. Until its first step the layer is still at them: no check needed.
        self._rollout_parameters: list[th.Tensor] | None = None
        self._at_rollout_start = False
        self._reset_diagnostics()

    # --- what a layer type provides --------------------------------------------------------------------------

    def transform(self, x: th.Tensor) -> th.Tensor:
        """The layer's map from input to output (with gradient to its own parameters)."""
        raise NotImplementedError

    def _transform_with(self, x: th.Tensor, parameters: list[th.Tensor]) -> th.Tensor:
        """``transform`` with the given parameters (in the order of ``self.parameters()``) instead of the layer's."""
        raise NotImplementedError

    @property
    def closed_form_backward(self) -> bool:
        """Whether :meth:`_backward` computes the parameters' gradients in closed form, without an autograd graph."""
        return False

    def _backward(self, x: th.Tensor, output: th.Tensor, grad: th.Tensor) -> None:
        """
        Set the gradients of the layer's parameters for the local loss, given its gradient ``grad`` with respect to
        ``output = transform(x)``: by autograd through ``output``'s graph, unless the layer has a closed form.
        """
        output.backward(grad)

    def _build_optimizer(self) -> None:
        kwargs = dict(self.config.local_optimizer_kwargs)
        self._lr = self.config.lr_at(1.0)
        optimizer_class = self.config.optimizer_class
        if optimizer_class is th.optim.Adam and "fused" not in kwargs:
            # Torch's fused kernel: the same update in fewer operations, which is most of a small layer's step time.
            # Torch builds or devices without it get the default implementation.
            try:
                self.optimizer = optimizer_class(self.parameters(), lr=self._lr, fused=True, **kwargs)
                return
            except (RuntimeError, ValueError, TypeError):
                pass
        self.optimizer = optimizer_class(self.parameters(), lr=self._lr, **kwargs)

    # --- what the policy and the callback tell the layer ------------------------------------------------------

    def set_guidance(self, signals: th.Tensor | None) -> None:
        """
        Per-sample guidance signals (one row per sample of the next batch) used by the next local step(s).

        :param signals: Tensor of shape ``(B, k)``, or ``None`` to train on the input geometry alone.
        """
        self._guidance = signals

    def set_progress(self, progress_remaining: float) -> None:
        """Update the local learning rate from its schedule (``progress_remaining`` goes from 1 to 0)."""
        self._lr = self.config.lr_at(progress_remaining)
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr
        self._progress_driven = True

    def begin_rollout(self) -> None:
        """
        Announce a new rollout, before its first training pass: the current parameters become the start from which
        ``max_feature_move`` measures the layer's move (nothing without that option).
        """
        if self.config.max_feature_move is not None:
            self._rollout_parameters = [parameter.detach().clone() for parameter in self.parameters()]
            self._at_rollout_start = True

    # --- the local learning rule --------------------------------------------------------------------------------

    def forward(self, x: th.Tensor) -> th.Tensor:
        if not th.is_grad_enabled():
            # Rollouts, predict and evaluation (SB3 runs them without gradient): the map alone.
            return self.transform(x)
        x = x.detach()
        if not (self.training and self.local_learning):
            with th.no_grad():
                return self.transform(x)
        guidance = self._guidance if self.config.guidance_coef > 0 else None
        if guidance is not None and guidance.shape[0] != x.shape[0]:
            raise ValueError(f"Guidance signals have {guidance.shape[0]} rows but the batch has {x.shape[0]} samples")
        closed_form = self.closed_form_backward
        if x.shape[0] <= self.config.max_pair_samples:
            with th.set_grad_enabled(not closed_form):
                output = self.transform(x)
            self._local_update(x, output, guidance)
            return output.detach()
        # Pair bound: a random subset of samples forms the pairs, so the local cost is O(max_pair_samples^2). Only the
        # subset is recomputed with gradient (same gradient, less memory), or read from the output in closed form.
        with th.no_grad():
            output = self.transform(x)
        index = th.randperm(x.shape[0], device=x.device)[: self.config.max_pair_samples]
        pairs = x.index_select(0, index)
        pair_output = output.index_select(0, index) if closed_form else self.transform(pairs)
        self._local_update(pairs, pair_output, guidance.index_select(0, index) if guidance is not None else None)
        return output

    def _local_update(self, x: th.Tensor, output: th.Tensor, guidance: th.Tensor | None) -> None:
        """The local update on the batch ``x`` whose output (with the current parameters) is ``output``."""
        if not self._progress_driven:
            self._progress_driven = True
            warnings.warn(
                f"local_lr is a schedule ({self.config.local_lr!r}) but nothing updates it: the PDM layers keep their "
                "initial rate. Pass callback=PDMCallback() to learn(), which sets it at each rollout.",
                stacklevel=4,
            )
        if x.shape[0] < 2:
            self._n_skipped += 1
            return
        if self._moved_too_far(x, output):
            self._n_held += 1
            return
        targets = self._targets(x, guidance)
        for step in range(self.config.local_steps):
            if step > 0:
                with th.set_grad_enabled(not self.closed_form_backward):
                    output = self.transform(x)
            loss = self._local_step(x, output, targets)
            if loss is None:
                self._n_skipped += 1
                return
        self._loss_sum = self._loss_sum + loss
        self._n_updates += 1
        self._last_output = output.detach()

    def _targets(self, x: th.Tensor, guidance: th.Tensor | None) -> th.Tensor:
        """Target distances: the input's pairwise distances, mixed with the guidance signals' (``docs/method.md``)."""
        with th.no_grad():
            distance = self.config.distance
            input_distances = pairwise_distances(x, distance)
            guidance_distances = None if guidance is None else pairwise_distances(guidance, GUIDANCE_DISTANCE[distance])
            return target_distances(input_distances, guidance_distances, self.config.guidance_coef, self.target_scale)

    def _local_step(self, x: th.Tensor, output: th.Tensor, targets: th.Tensor) -> th.Tensor | None:
        """
        One step of the layer's optimizer on the local loss between the pairwise distances of ``output`` and
        ``targets``. The loss's gradient with respect to the output is taken in closed form, then back through
        ``transform`` only.

        :return: The loss before the step, or ``None`` where it was not finite and the parameters were left as they are.
        """
        loss, grad = pdm_loss_and_grad(output, targets, self.config.distance)
        # The one host read of a step (a device sync on CUDA): a non-finite loss must never reach the parameters.
        if not math.isfinite(loss.item()):
            return None
        self._backward(x, output, grad)
        self.optimizer.step()
        # Cleared, not kept: the algorithm clips the norm of every gradient in the policy (max_grad_norm).
        for parameter in self.parameters():
            parameter.grad = None
        return loss

    def _moved_too_far(self, x: th.Tensor, output: th.Tensor) -> bool:
        """
        Whether the layer's output on ``x`` (``output``) has moved further than ``max_feature_move`` from its output with
        the parameters of the rollout's start: the median over units of ``rms(f - f_start) / std(f_start)``.
        """
        if self._at_rollout_start:
            # This check precedes the rollout's first step: no move yet.
            self._at_rollout_start = False
            return False
        if self._rollout_parameters is None:
            return False
        with th.no_grad():
            start = self._transform_with(x, self._rollout_parameters).flatten(start_dim=1)
            move = (output.detach().flatten(start_dim=1) - start).square().mean(dim=0).sqrt()
            move = move / start.std(dim=0).clamp_min(1e-8)
            return bool(move.median() > self.config.max_feature_move)

    # --- diagnostics and saving ---------------------------------------------------------------------------------

    def _reset_diagnostics(self) -> None:
        self._loss_sum: th.Tensor | float = 0.0
        self._n_updates = 0
        self._n_skipped = 0
        self._n_held = 0
        self._last_output: th.Tensor | None = None

    def pop_diagnostics(self) -> dict[str, float]:
        """
        Local-learning statistics since the last call, then reset them.

        :return: ``loss`` (mean local loss), ``feature_scale`` (mean per-unit std of the last batch's output),
            ``updates`` and ``skipped`` (local steps taken and skipped), and, with ``max_feature_move``, ``held``
            (steps not taken because the layer had moved that far on its rollout).
        """
        last = self._last_output
        stats = {
            "loss": float(self._loss_sum) / self._n_updates if self._n_updates else float("nan"),
            "feature_scale": last.flatten(start_dim=1).std(dim=0).mean().item() if last is not None else float("nan"),
            "updates": float(self._n_updates),
            "skipped": float(self._n_skipped),
        }
        if self.config.max_feature_move is not None:
            stats["held"] = float(self._n_held)
        self._reset_diagnostics()
        return stats

    def get_extra_state(self) -> dict[str, Any]:
        """The local optimizer's state and rate, in ``state_dict()`` so that ``model.save`` keeps them."""
        return {"optimizer": self.optimizer.state_dict(), "lr": self._lr}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        # Saves of earlier versions also hold the state of removed options (ignored) and, some, no rate.
        self.optimizer.load_state_dict(state["optimizer"])
        self._lr = state.get("lr", self.optimizer.param_groups[0]["lr"])


class PDMLinear(PDMLayer):
    """
    Dense PDM layer: ``activation(W x + b)``.

    :param in_features: Input size.
    :param out_features: Output size.
    :param activation_fn: Activation class (or name), applied after the linear map.
    :param config: Local learning options.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation_fn: str | type[nn.Module] = nn.Tanh,
        config: PDMConfig | None = None,
    ) -> None:
        super().__init__(out_features, config)
        self.linear = nn.Linear(in_features, out_features)
        self.activation = resolve_activation(activation_fn)()
        # The activation as a plain function where torch has the same one (the module's own call costs more than
        # tanh itself on a rollout's few samples), and its derivative from the output for the closed-form backward.
        self._activate = _ACTIVATION_FUNCTIONS.get(type(self.activation), self.activation.__call__)
        self._derivative = _activation_derivative(self.activation)
        self._build_optimizer()

    def transform(self, x: th.Tensor) -> th.Tensor:
        linear = self.linear
        return self._activate(F.linear(x, linear.weight, linear.bias))

    def _transform_with(self, x: th.Tensor, parameters: list[th.Tensor]) -> th.Tensor:
        weight, bias = parameters
        return self._activate(F.linear(x, weight, bias))

    @property
    def closed_form_backward(self) -> bool:
        return self._derivative is not None

    def _backward(self, x: th.Tensor, output: th.Tensor, grad: th.Tensor) -> None:
        derivative = self._derivative
        if derivative is None:
            super()._backward(x, output, grad)
            return
        # The linear map's gradients by hand: the local step's cost is mostly fixed per-op overhead on small batches,
        # and autograd's graph and engine are a good part of it.
        with th.no_grad():
            pre_activation_grad = derivative(output, grad)
            self.linear.weight.grad = pre_activation_grad.T @ x
            self.linear.bias.grad = pre_activation_grad.sum(dim=0)


class PDMConv2d(PDMLayer):
    """
    2-D convolutional PDM layer: ``activation(conv(x))``. Distances are taken between flattened feature maps.

    :param in_channels: Input channels.
    :param out_channels: Output channels.
    :param kernel_size: Kernel size.
    :param stride: Stride.
    :param padding: Padding.
    :param activation_fn: Activation class (or name).
    :param config: Local learning options.
    :param out_features: Flattened output size per sample, used to scale the targets (defaults to ``out_channels``,
        set it when the spatial output size is known).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        activation_fn: str | type[nn.Module] = nn.ReLU,
        config: PDMConfig | None = None,
        out_features: int | None = None,
    ) -> None:
        super().__init__(out_features or out_channels, config)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.activation = resolve_activation(activation_fn)()
        self._build_optimizer()

    def transform(self, x: th.Tensor) -> th.Tensor:
        return self.activation(self.conv(x))

    def _transform_with(self, x: th.Tensor, parameters: list[th.Tensor]) -> th.Tensor:
        weight, bias = parameters
        conv = self.conv
        return self.activation(F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups))


#: Activations whose module call is exactly a torch function (``nn.Tanh`` calls ``torch.tanh``, ``nn.ReLU`` ``F.relu``).
_ACTIVATION_FUNCTIONS: dict[type[nn.Module], Callable[[th.Tensor], th.Tensor]] = {
    nn.Tanh: th.tanh,
    nn.ReLU: F.relu,
    nn.Identity: lambda x: x,
}


def _activation_derivative(activation: nn.Module) -> Callable[[th.Tensor, th.Tensor], th.Tensor] | None:
    """
    ``(output, grad) -> grad * activation'(input)`` for the activations whose derivative is a function of their
    output (what autograd's backward of each computes), or ``None``: other activations go through autograd.
    """
    if type(activation) is nn.Tanh:
        return lambda output, grad: grad * (1.0 - output * output)
    if type(activation) is nn.Identity:
        return lambda output, grad: grad
    if type(activation) is nn.ReLU:
        return lambda output, grad: th.where(output > 0, grad, 0.0)
    if type(activation) is nn.LeakyReLU and activation.negative_slope > 0:
        # A positive slope keeps the sign, so the output tells which side of 0 the input was on.
        slope = activation.negative_slope
        return lambda output, grad: th.where(output > 0, grad, grad * slope)
    return None


def pdm_layers(module: nn.Module) -> list[PDMLayer]:
    """All PDM layers inside ``module``, in registration order."""
    return [m for m in module.modules() if isinstance(m, PDMLayer)]
