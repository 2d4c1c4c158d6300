"""
PDM layers: torch modules that train themselves by a local pairwise-distance-matching loss in their forward pass.

No gradient ever leaves a PDM layer: its output is always detached, so the RL loss of the heads cannot reach its
parameters, and its local loss only sees its own (detached) input and output.
"""

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch as th
import torch.nn.functional as F
from torch import nn
from torch.optim import optimizer as torch_optimizer

from sb3_pdm.config import PDMConfig, resolve_activation
from sb3_pdm.objective import (
    decorrelation_loss_and_grad,
    natural_target_scale,
    off_diagonal_mean,
    pairwise_distances,
    pdm_loss_grad_and_distances,
    target_distances,
)

#: Weight of each batch in the running means of pairwise distances (``normalization="running"``).
RUNNING_RATE = 0.01
#: Weight of each local step in the moving average of the guidance spread (``guidance_gate=True``): slow, so that a
#: spread that falls (a good policy's similar returns) keeps a low gate for about 1/GATE_RATE local steps.
GATE_RATE = 0.001
#: Smallest running std by which an input feature is divided (``input_norm_rate``): a near-constant feature is not
#: blown up to the scale of the others.
INPUT_STD_FLOOR = 0.01
#: Attributes of a PDM layer set at every local step or rollout (never parameters, buffers or submodules).
_PLAIN_STATE = frozenset(
    {
        "_guidance",
        "_guidance_spread",
        "_lr",
        "_gate",
        "_progress_driven",
        "_rollout_parameters",
        "_at_rollout_start",
        "_loss_sum",
        "_gate_sum",
        "_n_updates",
        "_n_skipped",
        "_n_held",
        "_last_output",
    }
)
#: Attribute under which a tensor carries its own pairwise distances (:func:`distances_of`).
_DISTANCES = "_pdm_distances"


def _moving_average_step(
    total: th.Tensor | float, weight: th.Tensor | float, value: th.Tensor | float, rate: float
) -> tuple[th.Tensor | float, th.Tensor | float]:
    """
    One step of a debiased exponential moving average kept as ``(total, weight)`` (floats or tensors): the average is
    ``total / weight``, where ``weight = 1 - (1 - rate)^n`` after ``n`` steps.
    """
    return (1.0 - rate) * total + rate * value, (1.0 - rate) * weight + rate


class PDMLayer(nn.Module):
    """
    Base class of a layer trained by local pairwise distance matching.

    In training mode with autograd enabled, ``forward``:

    1. computes the output from the detached input,
    2. computes the local loss between the output's pairwise distances and the target distances
       (input distances, optionally mixed with the distances of the guidance signals set by :meth:`set_guidance`),
    3. steps the layer's own optimizer,
    4. returns the output (computed before the step), detached.

    In eval mode or under ``torch.no_grad()`` the parameters never change. A batch with fewer than two samples or
    with non-finite values skips the local step (counted in :meth:`pop_diagnostics`).

    Subclasses build their parameters in ``__init__`` and implement :meth:`transform`, then call
    :meth:`_build_optimizer`.

    :param out_features: Number of output features per sample (the width used to scale the targets).
    :param config: Local learning options.
    """

    def __init__(self, out_features: int, config: PDMConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else PDMConfig()
        self.target_scale = natural_target_scale(self.config.distance, self.config.feature_scale, out_features)
        # Switched off for the frozen control (config.local_learning) and, per pass, beyond local_epochs.
        self.local_learning = self.config.local_learning
        self._guidance: th.Tensor | None = None
        self._guidance_spread: th.Tensor | None = None
        # A scheduled local rate needs someone (PDMCallback) to call set_progress; warned once if nobody does.
        self._progress_driven = not self.config.scheduled
        # normalization="running": moving averages of the batch-mean input and guidance distances, and their
        # debiasing weights (1 - (1 - rate)^n), kept in the extra state so that a save resumes them.
        self._distance_means = th.zeros(2)
        self._distance_weights = th.zeros(2)
        # guidance_gate: debiased moving average of the guidance spread, as (sum, weight); and the last gate applied.
        self._spread_average = [0.0, 0.0]
        self._gate = 1.0
        # input_norm_rate: moving averages of the input's per-feature mean and mean square (rows), and their debiasing
        # weight; created at the first local step, when the input's size is known.
        self._input_moments: th.Tensor | None = None
        self._input_weight = th.zeros(())
        # initial_feature_target: the parameters before the first local step (after any initialisation by the policy).
        self._initial_parameters: list[th.Tensor] | None = None
        # max_feature_move: the parameters when the current rollout was announced (begin_rollout), before its first
        # local step; None when no rollout was announced, and then no limit applies. Until that first step the layer
        # is still at them, so its check needs no forward (A2C takes no other step).
        self._rollout_parameters: list[th.Tensor] | None = None
        self._at_rollout_start = False
        self._reset_diagnostics()

    def __setattr__(self, name: str, value: Any) -> None:
        # The state a layer sets at every step and rollout is plain Python state, never a parameter, buffer or submodule:
        # set directly, without nn.Module's registration checks, which cost more than the setting itself.
        if name in _PLAIN_STATE:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _build_optimizer(self) -> None:
        optimizer_class = self.config.optimizer_class
        kwargs = dict(self.config.local_optimizer_kwargs)
        if optimizer_class in (th.optim.Adam, th.optim.AdamW):
            # The fused kernel halves the step time of these small per-layer optimizers (CPU and CUDA).
            kwargs.setdefault("fused", True)
        self._lr = self.config.lr_at(1.0)
        self.optimizer = optimizer_class(self.parameters(), lr=self._lr, **kwargs)

    def _optimizer_step(self) -> None:
        """
        One step of the layer's optimizer. Adam with the fused kernel (the default) calls the kernel directly: the same
        update, bit for bit, as ``optimizer.step()`` (``tests/test_layers.py``), without its per-call bookkeeping, which
        costs more than the kernel on a layer's two small tensors. Other optimizers and options, step hooks, or the first
        step (which creates the state) go through ``optimizer.step()``.
        """
        arguments = _fused_adam_arguments(self.optimizer)
        if arguments is None:
            self.optimizer.step()
            return
        tensors, options = arguments
        th._foreach_add_(tensors[-1], 1)
        th._fused_adam_(*tensors, **options)

    def transform(self, x: th.Tensor) -> th.Tensor:
        """The layer's map from input to output (with gradient to its own parameters)."""
        raise NotImplementedError

    def initial_transform(self, x: th.Tensor) -> th.Tensor:
        """
        The layer's map with the parameters it had before its first local step (``initial_feature_target``), which are
        kept from then on; called without gradient.
        """
        if self._initial_parameters is None:
            self._initial_parameters = [parameter.detach().clone() for parameter in self.parameters()]
        self._initial_parameters = [parameter.to(x.device) for parameter in self._initial_parameters]
        return self._transform_with(x, self._initial_parameters)

    def begin_rollout(self) -> None:
        """
        Announce a new rollout, before its first training pass (``max_feature_move``; nothing otherwise): the current
        parameters become the start the layer's move on this rollout is measured from.
        """
        if self.config.max_feature_move is not None:
            self._rollout_parameters = [parameter.detach().clone() for parameter in self.parameters()]
            self._at_rollout_start = True

    def _moved_too_far(self, x: th.Tensor, output: th.Tensor) -> bool:
        """
        ``max_feature_move``: whether the layer's output on ``x`` (``output``, from its current parameters) has moved
        further than the limit from its output with the parameters of the rollout's start (:meth:`begin_rollout`).
        """
        if self._at_rollout_start:
            # The step this check precedes is the rollout's first: the move is 0.
            self._at_rollout_start = False
            return False
        if self._rollout_parameters is None:
            return False
        with th.no_grad():
            start = self._transform_with(x, self._rollout_parameters).flatten(start_dim=1)
            move = (output.detach().flatten(start_dim=1) - start).square().mean(dim=0).sqrt()
            move = move / start.std(dim=0).clamp_min(1e-8)
            return bool(move.median() > self.config.max_feature_move)

    def _transform_with(self, x: th.Tensor, parameters: list[th.Tensor]) -> th.Tensor:
        """``transform`` with the given parameters (in the order of ``self.parameters()``) instead of the layer's."""
        raise NotImplementedError

    @property
    def closed_form_backward(self) -> bool:
        """Whether :meth:`_backward` computes the parameters' gradients in closed form, without an autograd graph."""
        return False

    def _backward(self, x: th.Tensor, output: th.Tensor, grad: th.Tensor) -> None:
        """
        Set the gradients of the layer's parameters for the local loss (they are ``None`` before), given its gradient
        ``grad`` with respect to ``output = transform(x)``: by autograd through ``output``'s graph, unless the layer has
        a closed form.
        """
        self._clear_grads()
        output.backward(grad)

    def _clear_grads(self) -> None:
        # Cheaper than optimizer.zero_grad for a layer's two or three tensors; grads are only ever set by _backward.
        for parameter in self.parameters():
            parameter.grad = None

    def set_guidance(self, signals: th.Tensor | None, spread: th.Tensor | float | None = None) -> None:
        """
        Per-sample guidance signals (one row per sample of the next batch) used by the next local step(s).

        :param signals: Tensor of shape ``(B, k)``, or ``None`` to train on the input geometry alone.
        :param spread: Spread of the batch's raw (unstandardised) guidance signals, which sets the step size when
            ``guidance_gate`` is on; ``None`` leaves the step size at the local rate.
        """
        self._guidance = signals
        self._guidance_spread = spread

    @property
    def gate(self) -> float:
        """Rate multiplier of the last local step (``guidance_gate``; 1 without it)."""
        return self._gate

    def set_progress(self, progress_remaining: float) -> None:
        """Update the local learning rate from its schedule (``progress_remaining`` goes from 1 to 0)."""
        self._lr = self.config.lr_at(progress_remaining)
        self._set_lr(self._lr * self._gate)
        self._progress_driven = True

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _update_gate(self) -> None:
        """
        ``guidance_gate``: move the spread's moving average and set this step's rate to ``local rate * min(1, spread /
        average)``; a missing or non-finite spread gives the full rate and leaves the average unchanged.
        """
        spread = float(self._guidance_spread) if self._guidance_spread is not None else float("nan")
        gate = 1.0
        if math.isfinite(spread):
            total, weight = self._spread_average
            self._spread_average = list(_moving_average_step(total, weight, spread, GATE_RATE))
            average = self._spread_average[0] / self._spread_average[1]
            gate = min(1.0, spread / average) if average > 0 else 1.0
        if gate != self._gate:
            self._gate = gate
            self._set_lr(self._lr * gate)

    def forward(self, x: th.Tensor) -> th.Tensor:
        if not th.is_grad_enabled():
            # Rollouts, predict and evaluation (SB3 runs them without gradient): the map alone.
            return self.transform(x)
        # The pairwise distances the layer before computed of its output, which this layer's target reads again.
        known = getattr(x, _DISTANCES, None)
        x = x.detach()
        if known is not None:
            setattr(x, _DISTANCES, known)
        if not (self.training and self.local_learning):
            with th.no_grad():
                return self.transform(x)
        n_samples = x.shape[0]
        guidance = self._guidance if self.config.guidance_coef > 0 else None
        if guidance is not None and guidance.shape[0] != n_samples:
            raise ValueError(f"Guidance signals have {guidance.shape[0]} rows but the batch has {n_samples} samples")
        # Layers with a closed-form parameter gradient (_backward) need no autograd graph of their output.
        closed_form = self.closed_form_backward
        if n_samples <= self.config.max_pair_samples:
            with th.set_grad_enabled(not closed_form):
                output = self.transform(x)
            output_distances = self._local_update(x, output, guidance)
            result = output.detach()
            if output_distances is not None:
                keep_distances(result, self.config.distance, output_distances)
            return result
        # Pair bound: a random subset of samples forms the pairs, so the local cost is O(max_pair_samples^2). The
        # batch's output needs no graph: only the subset is recomputed with gradient (same gradient, less memory), or
        # read from the output where the gradient is in closed form.
        with th.no_grad():
            output = self.transform(x)
        index = th.randperm(n_samples, device=x.device)[: self.config.max_pair_samples]
        pairs = x.index_select(0, index)
        pair_output = output.index_select(0, index) if closed_form else self.transform(pairs)
        self._local_update(pairs, pair_output, guidance.index_select(0, index) if guidance is not None else None)
        return output

    def _local_update(self, x: th.Tensor, output: th.Tensor, guidance: th.Tensor | None) -> th.Tensor | None:
        """
        One local step (or ``local_steps``) on the batch ``x`` whose output is ``output``.

        :return: The pairwise distances of ``output`` computed by the step, or ``None`` where the step was not made.
        """
        if not self._progress_driven:
            self._progress_driven = True
            warnings.warn(
                f"local_lr is a schedule ({self.config.local_lr!r}) but nothing updates it: the PDM layers keep their "
                "initial rate. Pass callback=PDMCallback() to learn(), which sets it at each rollout.",
                stacklevel=4,
            )
        if x.shape[0] < 2:
            self._n_skipped += 1
            return None
        if self.config.max_feature_move is not None and self._moved_too_far(x, output):
            self._n_held += 1
            return None
        if self.config.guidance_gate:
            self._update_gate()
        with th.no_grad():
            metric_input = self.initial_transform(x) if self.config.initial_feature_target else x
            if self.config.input_norm_rate is not None:
                metric_input = self._standardized_input(metric_input)
            input_distances = distances_of(metric_input, self.config.distance)
            # The layers of a trunk read the same guidance tensor: its distances are computed once.
            guidance_distances = distances_of(guidance, "euclidean") if guidance is not None else None
            means: list[th.Tensor | None] = [None, None]
            if self.config.normalization == "running":
                means = self._running_means(input_distances, guidance_distances)
            targets = target_distances(
                input_distances,
                guidance_distances,
                self.config.guidance_coef,
                self.config.normalization,
                self.target_scale,
                *means,
            )
        for step in range(self.config.local_steps):
            # Extra steps recompute the output with the updated parameters.
            if step == 0:
                out = output
            else:
                with th.set_grad_enabled(not self.closed_form_backward):
                    out = self.transform(x)
            # The loss's gradient with respect to the output in closed form, then back through transform only.
            loss, grad, distances = pdm_loss_grad_and_distances(out, targets, self.config.distance)
            if step == 0:
                output_distances = distances
            if self.config.decorrelation_coef > 0:
                spread_loss, spread_grad = decorrelation_loss_and_grad(out, self.config.feature_scale**2)
                loss = loss + self.config.decorrelation_coef * spread_loss
                grad.add_(spread_grad, alpha=self.config.decorrelation_coef)
            if not math.isfinite(loss.item()):
                self._n_skipped += 1
                return None
            self._backward(x, out, grad)
            self._optimizer_step()
            self._clear_grads()
        # Kept as tensors: no host sync on the hot path, converted in pop_diagnostics().
        self._loss_sum = self._loss_sum + loss.detach()
        self._gate_sum += self._gate
        self._n_updates += 1
        self._last_output = output.detach()
        return output_distances

    def _running_means(self, input_distances: th.Tensor, guidance_distances: th.Tensor | None) -> list[th.Tensor | None]:
        """
        Move the running means of the batch-mean distances and return them, debiased (``None`` without guidance).
        A non-finite batch mean leaves them unchanged; tensor arithmetic only, so no host sync on CUDA.
        """
        self._distance_means = self._distance_means.to(input_distances.device)
        self._distance_weights = self._distance_weights.to(input_distances.device)
        means: list[th.Tensor | None] = []
        for k, distances in enumerate([input_distances, guidance_distances]):
            if distances is None:
                means.append(None)
                continue
            value = off_diagonal_mean(distances)
            finite = th.isfinite(value)
            mean, weight = self._distance_means[k], self._distance_weights[k]
            new_mean, new_weight = _moving_average_step(mean, weight, value, RUNNING_RATE)
            self._distance_means[k] = th.where(finite, new_mean, mean)
            self._distance_weights[k] = th.where(finite, new_weight, weight)
            # 0 / 0 before any finite batch: a non-finite target, and the step is skipped.
            means.append(self._distance_means[k] / self._distance_weights[k])
        return means

    def _standardized_input(self, x: th.Tensor) -> th.Tensor:
        """
        ``input_norm_rate``: move the running per-feature moments of the layer's input and return the (flattened)
        input divided per feature by its running std. A non-finite batch leaves the moments unchanged; tensor
        arithmetic only, so no host sync on CUDA.
        """
        flat = x.flatten(start_dim=1)
        batch = th.stack([flat.mean(dim=0), (flat * flat).mean(dim=0)])
        if self._input_moments is None:
            self._input_moments = th.zeros_like(batch)
        self._input_moments = self._input_moments.to(batch.device)
        self._input_weight = self._input_weight.to(batch.device)
        new_moments, new_weight = _moving_average_step(
            self._input_moments,
            self._input_weight,
            batch,
            self.config.input_norm_rate,  # type: ignore[arg-type]
        )
        finite = th.isfinite(batch).all()
        self._input_moments = th.where(finite, new_moments, self._input_moments)
        self._input_weight = th.where(finite, new_weight, self._input_weight)
        # 0 / 0 before any finite batch: a non-finite target, and the step is skipped.
        mean, mean_square = self._input_moments / self._input_weight
        std = (mean_square - mean * mean).clamp_min(0.0).sqrt().clamp_min(INPUT_STD_FLOOR)
        return flat / std

    def _reset_diagnostics(self) -> None:
        self._loss_sum: th.Tensor | float = 0.0
        self._gate_sum = 0.0
        self._n_updates = 0
        self._n_skipped = 0
        self._n_held = 0
        self._last_output: th.Tensor | None = None

    def pop_diagnostics(self) -> dict[str, float]:
        """
        Local-learning statistics since the last call, then reset them.

        :return: ``loss`` (mean local loss), ``feature_scale`` (mean per-unit std of the last batch's output),
            ``updates`` and ``skipped`` (local steps taken and skipped), ``held`` (steps not taken because the
            layer had moved ``max_feature_move`` on its rollout; with that option only) and ``gate`` (mean rate
            multiplier of those steps, ``guidance_gate`` only).
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
        if self.config.guidance_gate:
            stats["gate"] = self._gate_sum / self._n_updates if self._n_updates else float("nan")
        self._reset_diagnostics()
        return stats

    def get_extra_state(self) -> dict:
        """
        Local optimizer state, running distance means (``normalization="running"``), the guidance spread's average
        with the current gate (``guidance_gate``), the input's running moments (``input_norm_rate``) and the initial
        parameters (``initial_feature_target``), stored in ``state_dict()`` so that ``model.save`` keeps them.
        """
        return {
            "optimizer": self.optimizer.state_dict(),
            "distance_means": self._distance_means.clone(),
            "distance_weights": self._distance_weights.clone(),
            "spread_average": list(self._spread_average),
            "gate": self._gate,
            "lr": self._lr,
            "input_moments": self._input_moments.clone() if self._input_moments is not None else None,
            "input_weight": self._input_weight.clone(),
            "initial_parameters": self._initial_parameters,
        }

    def set_extra_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        # Absent from the saves of versions before normalization="running": the running means start afresh.
        if "distance_means" in state:
            self._distance_means = state["distance_means"].clone()
            self._distance_weights = state["distance_weights"].clone()
        # Absent from the saves of versions before guidance_gate.
        if "spread_average" in state:
            self._spread_average = list(state["spread_average"])
            self._gate = state["gate"]
            self._lr = state["lr"]
        # Absent from the saves of versions before input_norm_rate.
        if "input_moments" in state:
            moments = state["input_moments"]
            self._input_moments = moments.clone() if moments is not None else None
            self._input_weight = state["input_weight"].clone()
        # Absent from the saves of versions before initial_feature_target.
        if "initial_parameters" in state:
            initial = state["initial_parameters"]
            self._initial_parameters = [parameter.clone() for parameter in initial] if initial is not None else None


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
        return self.activation(self.conv._conv_forward(x, weight, bias))


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


def _fused_adam_arguments(optimizer: th.optim.Optimizer) -> tuple[list[list[th.Tensor]], dict[str, Any]] | None:
    """
    The tensors and options of a direct call of ``torch._fused_adam_`` that makes the step ``optimizer.step()`` would
    make, or ``None`` where that call does not apply: another optimizer class (AdamW included), options the direct call
    does not cover (``amsgrad``, ``capturable``, ``differentiable``, tensor rates or betas, several parameter groups),
    step hooks, parameters without a gradient or without state yet (the first step), or no such kernel in this torch.
    The step counts come last in the tensors.
    """
    if type(optimizer) is not th.optim.Adam or not hasattr(th, "_fused_adam_") or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    if not group.get("fused") or any(group.get(key, True) for key in ("amsgrad", "capturable", "differentiable")):
        return None
    if group.get("decoupled_weight_decay", False) or isinstance(group["lr"], th.Tensor):
        return None
    beta1, beta2 = group["betas"]
    if isinstance(beta1, th.Tensor) or isinstance(beta2, th.Tensor):
        return None
    # Hooks and a GradScaler's attributes: only optimizer.step() honours them.
    hooks = [getattr(optimizer, name, None) for name in ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks")]
    if any(hook is None or hook for hook in hooks) or _has_global_optimizer_hooks():
        return None
    if getattr(optimizer, "grad_scale", None) is not None or getattr(optimizer, "found_inf", None) is not None:
        return None
    parameters = group["params"]
    states = [optimizer.state.get(parameter) for parameter in parameters]
    if any(parameter.grad is None for parameter in parameters) or not all(states):
        return None
    tensors = [
        parameters,
        [parameter.grad for parameter in parameters],
        [state["exp_avg"] for state in states],  # type: ignore[index]
        [state["exp_avg_sq"] for state in states],  # type: ignore[index]
        [],
        [state["step"] for state in states],  # type: ignore[index]
    ]
    options = dict(
        amsgrad=False,
        lr=group["lr"],
        beta1=beta1,
        beta2=beta2,
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=group["maximize"],
        grad_scale=None,
        found_inf=None,
    )
    return tensors, options


def _has_global_optimizer_hooks() -> bool:
    return bool(
        getattr(torch_optimizer, "_global_optimizer_pre_hooks", None)
        or getattr(torch_optimizer, "_global_optimizer_post_hooks", None)
    )


def keep_distances(x: th.Tensor, distance: str, matrix: th.Tensor) -> None:
    """Let ``x`` carry ``matrix``, its pairwise ``distance`` matrix, for :func:`distances_of` (until ``x`` changes)."""
    if not x.is_inference():  # inference tensors have no version counter to tell a change
        setattr(x, _DISTANCES, (x._version, distance, matrix))


def distances_of(x: th.Tensor, distance: str) -> th.Tensor:
    """
    ``pairwise_distances(x, distance)``, read from ``x`` where it carries them (:func:`keep_distances`) and ``x`` has not
    changed in place since, else computed and kept on ``x``. A layer keeps its output's distances, computed by its local
    loss, on the output it returns: the next layer's target reads them instead of computing them again, as the layers
    of one trunk do with the distances of their shared guidance signals.
    """
    known = getattr(x, _DISTANCES, None)
    if known is not None and known[1] == distance and known[0] == x._version:
        return known[2]
    matrix = pairwise_distances(x, distance)
    keep_distances(x, distance, matrix)
    return matrix


def pdm_layers(module: nn.Module) -> list[PDMLayer]:
    """All PDM layers inside ``module``, in registration order."""
    return [m for m in module.modules() if isinstance(m, PDMLayer)]
