"""
Memory and speed of one PPO training update: stock SB3 ``ActorCriticPolicy`` (backprop) against ``PDMPolicy``.

One update is one minibatch of PPO's ``train()``: ``policy.evaluate_actions``, the clipped PPO loss (policy, value
and entropy terms), ``backward``, gradient clipping and ``policy.optimizer.step()``. For a PDM policy the local
updates of the PDM layers run inside ``evaluate_actions`` and are part of the update. Policies are built directly
from gymnasium spaces (no env): MLP policies on a 64-d ``Box`` observation with an 8-d ``Box`` action, and the
NatureCNN extractor on 84x84x4 uint8 frames (channel-first, as SB3's ``VecTransposeImage`` gives them) with 6
discrete actions.

Measured per policy and grid point:

- ``peak_saved_bytes``: peak of the *live* bytes of the tensors saved for backward
  (``torch.autograd.graph.saved_tensors_hooks``: a storage counts once however often it is saved, from the moment
  it is saved until autograd frees it). Device-independent: it is what the autograd graphs hold, so it is measured
  on CPU too. Parameters saved by a graph (a linear layer's weight) count as well.
- ``peak_cuda_bytes``: ``torch.cuda.max_memory_allocated`` over the timed updates, on a CUDA device only: the
  policy's parameters, gradients and optimizer states, the batch and the update's own allocations (the memory held
  by the other policy, alive at the same time, is left out).
- ``sec_per_update``: median wall-clock time of an update over a few repeats after a warm-up update; the methods'
  timed updates alternate, so that a slowdown of a shared machine hits both alike.

Example::

    python -m sb3_pdm.benchmark.memory --device cpu --out benchmarks/results/memory
    python -m sb3_pdm.benchmark.memory --quick --out /tmp/memory
"""

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy
from torch import nn

from sb3_pdm import CnnPDMPolicy, PDMPolicy
from sb3_pdm.benchmark.report import replace_readme_section
from sb3_pdm.guidance import GuidanceSignals, attach_signals

KINDS = ("depth", "width", "batch", "cnn")
#: ``pdm-unbounded`` is PDM with ``max_pair_samples`` set to the batch size (no pair bound), in the batch sweep only.
METHODS = ("backprop", "pdm", "pdm-unbounded")
OBS_DIM, ACTION_DIM, N_DISCRETE_ACTIONS = 64, 8, 6
IMAGE_SHAPE = (4, 84, 84)
MIB = 2**20


@dataclass(frozen=True)
class Point:
    """One grid point: ``kind`` of sweep, hidden layers per trunk, their width and the minibatch size."""

    kind: str
    depth: int
    width: int
    batch: int


@dataclass(frozen=True)
class Grid:
    """
    The sweeps measured. Each sweep varies one size and holds the other two fixed.

    :param depths: Hidden layers per trunk (actor and critic each) of the depth sweep, at ``depth_size``.
    :param depth_size: ``(width, batch)`` of the depth sweep.
    :param widths: Widths of the width sweep, at ``width_size``.
    :param width_size: ``(depth, batch)`` of the width sweep.
    :param batches: Minibatch sizes of the batch sweep, at ``batch_size``.
    :param batch_size: ``(depth, width)`` of the batch sweep.
    :param unbounded_max_batch: Largest batch at which PDM without pair bound is measured (its cost is ``O(B^2)``).
    :param cnn_batches: Minibatch sizes of the CNN comparison.
    :param reference: ``(depth, width, batch)`` of the memory-ratio and time-ratio checks (a depth-sweep point).
    :param repeats: Timed updates per policy (after one warm-up update); one for ``pdm-unbounded``.
    """

    depths: tuple[int, ...]
    depth_size: tuple[int, int]
    widths: tuple[int, ...]
    width_size: tuple[int, int]
    batches: tuple[int, ...]
    batch_size: tuple[int, int]
    unbounded_max_batch: int
    cnn_batches: tuple[int, ...]
    reference: tuple[int, int, int]
    repeats: int

    def points(self, kinds: tuple[str, ...] = KINDS) -> list[Point]:
        """The grid points of the given sweeps, in order."""
        points = []
        if "depth" in kinds:
            points += [Point("depth", depth, *self.depth_size) for depth in self.depths]
        if "width" in kinds:
            depth, batch = self.width_size
            points += [Point("width", depth, width, batch) for width in self.widths]
        if "batch" in kinds:
            points += [Point("batch", *self.batch_size, batch) for batch in self.batches]
        if "cnn" in kinds:
            points += [Point("cnn", 0, 512, batch) for batch in self.cnn_batches]
        return points

    def methods(self, point: Point) -> tuple[str, ...]:
        """The methods measured at ``point``."""
        if point.kind == "batch" and point.batch <= self.unbounded_max_batch:
            return METHODS
        return METHODS[:2]


FULL_GRID = Grid(
    depths=(2, 4, 8, 16),
    depth_size=(1024, 4096),
    widths=(64, 128, 256, 512, 1024, 2048),
    width_size=(4, 1024),
    batches=(64, 128, 256, 1024, 4096, 8192),
    batch_size=(8, 256),
    unbounded_max_batch=4096,
    cnn_batches=(256, 1024),
    reference=(8, 1024, 4096),
    repeats=3,
)
QUICK_GRID = Grid(
    depths=(2, 4, 8),
    depth_size=(32, 256),
    widths=(16, 64),
    width_size=(2, 64),
    batches=(64, 256),
    batch_size=(2, 32),
    unbounded_max_batch=256,
    cnn_batches=(8,),
    reference=(8, 32, 256),
    repeats=1,
)


class SavedTensorMeter:
    """
    Live and peak bytes of the tensors autograd saves for backward, while the meter is entered.

    The pack hook counts a tensor's storage once (by device and ``data_ptr``) and wraps the tensor in a handle; the
    handle is what autograd keeps, so it dies when autograd frees the saved tensor (after ``backward``, or with the
    graph), and its ``__del__`` gives the bytes back.
    """

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self._storages: dict[tuple[str, int], list[int]] = {}  # key -> [handles alive, nbytes]
        self._hooks = th.autograd.graph.saved_tensors_hooks(self._pack, _SavedHandle.unpack)

    def reset(self) -> None:
        """Restart the peak from the bytes live now."""
        self.peak = self.live

    def _pack(self, tensor: th.Tensor) -> "_SavedHandle":
        storage = tensor.untyped_storage()
        key = (str(tensor.device), storage.data_ptr())
        entry = self._storages.get(key)
        if entry is None:
            entry = self._storages[key] = [0, storage.nbytes()]
            self.live += entry[1]
            self.peak = max(self.peak, self.live)
        entry[0] += 1
        return _SavedHandle(tensor, self, key)

    def release(self, key: tuple[str, int]) -> None:
        entry = self._storages[key]
        entry[0] -= 1
        if entry[0] == 0:
            del self._storages[key]
            self.live -= entry[1]

    def __enter__(self) -> "SavedTensorMeter":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._hooks.__exit__(*exc_info)


class _SavedHandle:
    """What autograd keeps instead of a saved tensor; gives the tensor's bytes back to the meter when freed."""

    __slots__ = ("tensor", "meter", "key")

    def __init__(self, tensor: th.Tensor, meter: SavedTensorMeter, key: tuple[str, int]) -> None:
        self.tensor = tensor
        self.meter = meter
        self.key = key

    @staticmethod
    def unpack(handle: "_SavedHandle") -> th.Tensor:
        return handle.tensor

    def __del__(self) -> None:
        self.meter.release(self.key)


@dataclass
class Batch:
    """One PPO minibatch (observations carry the guidance signals, as ``PDMRolloutBuffer`` attaches them)."""

    observations: th.Tensor
    actions: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor


def make_spaces(point: Point) -> tuple[spaces.Box, spaces.Space]:
    """Observation and action spaces of a grid point."""
    if point.kind == "cnn":
        return spaces.Box(0, 255, IMAGE_SHAPE, dtype="uint8"), spaces.Discrete(N_DISCRETE_ACTIONS)
    return spaces.Box(-10.0, 10.0, (OBS_DIM,), dtype="float32"), spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype="float32")


def make_policy(method: str, point: Point, device: th.device) -> ActorCriticPolicy:
    """
    The policy of ``method`` at ``point``, in training mode: SB3's stock policy (``backprop``) or its PDM
    counterpart, with the same ``net_arch`` and activation (SB3's defaults for the CNN: NatureCNN, no hidden trunk).
    """
    observation_space, action_space = make_spaces(point)
    kwargs: dict[str, Any] = {}
    if point.kind == "cnn":
        policy_class = ActorCriticCnnPolicy if method == "backprop" else CnnPDMPolicy
    else:
        policy_class = ActorCriticPolicy if method == "backprop" else PDMPolicy
        kwargs.update(net_arch=[point.width] * point.depth, activation_fn=nn.Tanh)
    if method == "pdm-unbounded":
        kwargs["pdm_kwargs"] = dict(max_pair_samples=max(point.batch, 2))
    policy = policy_class(observation_space, action_space, lr_schedule=lambda _: 3e-4, **kwargs).to(device)
    policy.set_training_mode(True)
    return policy


def make_batch(point: Point, device: th.device, seed: int = 0) -> Batch:
    """A random minibatch of ``point.batch`` samples for the spaces of ``point``."""
    generator = th.Generator().manual_seed(seed)
    n = point.batch
    if point.kind == "cnn":
        observations = th.randint(0, 256, (n, *IMAGE_SHAPE), generator=generator, dtype=th.uint8)
        actions = th.randint(0, N_DISCRETE_ACTIONS, (n,), generator=generator)
    else:
        observations = th.randn(n, OBS_DIM, generator=generator)
        actions = th.rand(n, ACTION_DIM, generator=generator) * 2.0 - 1.0
    batch = Batch(
        observations.to(device),
        actions.to(device),
        (-th.rand(n, generator=generator)).to(device),
        th.randn(n, generator=generator).to(device),
        th.randn(n, generator=generator).to(device),
    )
    attach_signals(batch.observations, GuidanceSignals(batch.returns, batch.advantages, batch.actions))
    return batch


def ppo_update(
    policy: ActorCriticPolicy,
    batch: Batch,
    clip_range: float = 0.2,
    ent_coef: float = 0.01,
    vf_coef: float = 0.5,
    max_grad_norm: float = 0.5,
) -> None:
    """One minibatch step of SB3's ``PPO.train()`` (advantage normalisation, clipped surrogate, no value clipping)."""
    values, log_prob, entropy = policy.evaluate_actions(batch.observations, batch.actions)
    values = values.flatten()
    advantages = (batch.advantages - batch.advantages.mean()) / (batch.advantages.std() + 1e-8)
    ratio = th.exp(log_prob - batch.old_log_prob)
    policy_loss = -th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
    value_loss = F.mse_loss(batch.returns, values)
    entropy_loss = -th.mean(entropy) if entropy is not None else -th.mean(-log_prob)
    loss = policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    policy.optimizer.zero_grad()
    loss.backward()
    th.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
    policy.optimizer.step()


def _synchronize(device: th.device) -> None:
    if device.type == "cuda":
        th.cuda.synchronize(device)


def peak_saved_bytes(update: Callable[[], None], device: th.device) -> int:
    """
    Run ``update`` once (the warm-up) under a :class:`SavedTensorMeter`.

    :return: The peak of the live bytes saved for backward during the update.
    """
    meter = SavedTensorMeter()
    with meter:
        update()
    _synchronize(device)
    if meter.live != 0:
        raise RuntimeError(f"{meter.live} bytes saved for backward are still alive after the update")
    return meter.peak


def timed_update(update: Callable[[], None], device: th.device, others_bytes: int = 0) -> tuple[float, int | None]:
    """
    Run ``update`` once, timed.

    :param update: One training update.
    :param device: Its device.
    :param others_bytes: CUDA memory held by other policies alive meanwhile, left out of the peak.
    :return: Seconds, and on CUDA the peak allocated memory during the update less ``others_bytes``.
    """
    if device.type == "cuda":
        th.cuda.reset_peak_memory_stats(device)
    _synchronize(device)
    start = time.perf_counter()
    update()
    _synchronize(device)
    seconds = time.perf_counter() - start
    return seconds, th.cuda.max_memory_allocated(device) - others_bytes if device.type == "cuda" else None


def _allocated(device: th.device) -> int:
    return th.cuda.memory_allocated(device) if device.type == "cuda" else 0


def device_name(device: th.device) -> str:
    """Human-readable name of the device (GPU model, or CPU model and torch threads)."""
    if device.type == "cuda":
        return th.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    return f"{name} ({th.get_num_threads()} torch threads)"


def run_grid(grid: Grid, device: th.device, kinds: tuple[str, ...] = KINDS, verbose: bool = True) -> list[dict[str, Any]]:
    """
    Measure every method at every point of ``grid``; one row per (point, method).

    At each point the policies of all methods are built and warmed up (the warm-up update measures the saved bytes),
    then their timed updates alternate, so that a slowdown of a shared machine hits every method alike.
    """
    rows = []
    name = device_name(device)
    for point in grid.points(kinds):
        batch = make_batch(point, device)
        methods = grid.methods(point)
        updates, saved, footprints = {}, {}, {}
        for method in methods:
            before = _allocated(device)
            th.manual_seed(0)
            updates[method] = partial(ppo_update, make_policy(method, point, device), batch)
            saved[method] = peak_saved_bytes(updates[method], device)
            # Parameters, gradients, optimizer states and diagnostics this policy keeps on the device.
            footprints[method] = _allocated(device) - before
        times: dict[str, list[float]] = {method: [] for method in methods}
        cuda_peaks: dict[str, int | None] = {method: None for method in methods}
        for repeat in range(grid.repeats):
            for method in methods:
                # Without the pair bound an update costs O(B^2) per layer: one timed update is enough to show it.
                if method == "pdm-unbounded" and repeat > 0:
                    continue
                others = sum(footprints[other] for other in methods if other != method)
                seconds, cuda_peak = timed_update(updates[method], device, others)
                times[method].append(seconds)
                if cuda_peak is not None:
                    cuda_peaks[method] = max(cuda_peaks[method] or 0, cuda_peak)
        del updates
        gc.collect()
        if device.type == "cuda":
            th.cuda.empty_cache()
        for method in methods:
            row = dict(
                device=str(device),
                device_name=name,
                **vars(point),
                method=method,
                peak_saved_bytes=saved[method],
                peak_cuda_bytes=cuda_peaks[method],
                sec_per_update=statistics.median(times[method]),
            )
            rows.append(row)
            if verbose:
                cuda = f", CUDA peak {row['peak_cuda_bytes'] / MIB:9.1f} MiB" if row["peak_cuda_bytes"] is not None else ""
                print(
                    f"{point.kind:<5} | depth {point.depth:>2} width {point.width:>4} batch {point.batch:>4} {method:<13} "
                    f"saved peak {row['peak_saved_bytes'] / MIB:9.2f} MiB{cuda}, {row['sec_per_update'] * 1e3:9.1f} ms/update",
                    flush=True,
                )
    return rows


def _find(rows: list[dict[str, Any]], method: str, **sizes: int | str) -> dict[str, Any] | None:
    for row in rows:
        if row["method"] == method and all(row[key] == value for key, value in sizes.items()):
            return row
    return None


def checks(rows: list[dict[str, Any]], grid: Grid) -> list[dict[str, Any]]:
    """
    The targets, computed from the rows: PDM/backprop peak saved bytes at the reference point (<= 1/4), PDM's peak
    growth from the smallest to the largest depth of the depth sweep (<= 10%), and the time ratio (reported).

    :return: One dict per check: ``name``, ``value`` (``None`` when the grid lacks the points), ``target``,
        ``passed`` (``None`` for reported-only values) and ``detail``.
    """
    depth, width, batch = grid.reference
    out = []
    pdm, backprop = (_find(rows, m, kind="depth", depth=depth, width=width, batch=batch) for m in ("pdm", "backprop"))
    where = f"depth {depth}, width {width}, batch {batch}"
    if pdm and backprop:
        ratio = pdm["peak_saved_bytes"] / backprop["peak_saved_bytes"]
        detail = f"PDM {pdm['peak_saved_bytes'] / MIB:.2f} MiB vs backprop {backprop['peak_saved_bytes'] / MIB:.2f} MiB"
        out.append(
            dict(
                name=f"PDM/backprop peak saved bytes ({where})",
                value=ratio,
                target="<= 0.25",
                passed=ratio <= 0.25,
                detail=detail,
            )
        )
        time_ratio = pdm["sec_per_update"] / backprop["sec_per_update"]
        detail = f"PDM {pdm['sec_per_update'] * 1e3:.1f} ms vs backprop {backprop['sec_per_update'] * 1e3:.1f} ms"
        out.append(
            dict(
                name=f"PDM/backprop time per update ({where})", value=time_ratio, target="reported", passed=None, detail=detail
            )
        )
    else:
        out.append(
            dict(
                name=f"PDM/backprop peak saved bytes ({where})",
                value=None,
                target="<= 0.25",
                passed=None,
                detail="not in grid",
            )
        )
    lo, hi = min(grid.depths), max(grid.depths)
    width, batch = grid.depth_size
    growth_name = f"peak saved bytes growth, depth {lo} -> {hi} (width {width}, batch {batch})"
    for method, target in (("pdm", "<= 10%"), ("backprop", "reported")):
        first, last = (_find(rows, method, kind="depth", depth=d, width=width, batch=batch) for d in (lo, hi))
        if first and last:
            growth = last["peak_saved_bytes"] / first["peak_saved_bytes"] - 1.0
            passed = growth <= 0.10 if method == "pdm" else None
            detail = f"{first['peak_saved_bytes'] / MIB:.2f} -> {last['peak_saved_bytes'] / MIB:.2f} MiB"
        else:
            growth, passed, detail = None, None, "not in grid"
        label = "PDM" if method == "pdm" else "backprop"
        out.append(dict(name=f"{label} {growth_name}", value=growth, target=target, passed=passed, detail=detail))
    time_ratios = [
        row["sec_per_update"] / other["sec_per_update"]
        for row in rows
        if row["method"] == "pdm"
        and (other := _find(rows, "backprop", kind=row["kind"], depth=row["depth"], width=row["width"], batch=row["batch"]))
    ]
    if time_ratios:
        detail = f"median {statistics.median(time_ratios):.2f} over {len(time_ratios)} grid points"
        out.append(
            dict(
                name="PDM/backprop time per update, range over the grid",
                value=(min(time_ratios), max(time_ratios)),
                target="reported",
                passed=None,
                detail=detail,
            )
        )
    return out


def _format_check(check: dict[str, Any]) -> str:
    value = check["value"]
    if value is None:
        text = "n/a"
    elif isinstance(value, tuple):
        text = f"{value[0]:.2f} - {value[1]:.2f}"
    elif "growth" in check["name"]:
        text = f"{value * 100:+.1f}%"
    else:
        text = f"{value:.3f}"
    verdict = {True: "PASS", False: "MISS", None: ""}[check["passed"]]
    return f"| {check['name']} | {text} | {check['target']} | {verdict} | {check['detail']} |"


README_MEMORY_START, README_MEMORY_END = "<!-- memory:start -->", "<!-- memory:end -->"

SWEEP_TITLES = {
    "depth": "Depth (hidden layers per trunk; actor and critic trunks each)",
    "width": "Width",
    "batch": "Batch size (PDM pairs bounded by `max_pair_samples`=128; `pdm-unbounded`: no bound)",
    "cnn": "NatureCNN extractor, 84x84x4 uint8 frames (`CnnPDMPolicy` vs `ActorCriticCnnPolicy`)",
}


def markdown(rows: list[dict[str, Any]], grid: Grid) -> str:
    """Markdown report: the target checks and one table per sweep with PDM/backprop ratios."""
    has_cuda = any(row["peak_cuda_bytes"] is not None for row in rows)
    lines = ["# Memory and time of one PPO update: backprop vs PDM", ""]
    if rows:
        lines += [f"Device: `{rows[0]['device']}` ({rows[0]['device_name']}).", ""]
    lines += [
        "Saved = peak live bytes of the tensors saved for backward during one PPO update (minibatch); ms = median "
        "wall-clock time per update; CUDA peak = `torch.cuda.max_memory_allocated` during the update (CUDA only). "
        "Ratios are PDM / backprop.",
        "",
        "## Targets",
        "",
        "| check | value | target | result | detail |",
        "|---|---|---|---|---|",
    ]
    lines += [_format_check(check) for check in checks(rows, grid)]
    for kind in KINDS:
        kind_rows = [row for row in rows if row["kind"] == kind]
        if not kind_rows:
            continue
        unbounded = any(row["method"] == "pdm-unbounded" for row in kind_rows)
        header = ["depth", "width", "batch", "backprop saved (MiB)", "PDM saved (MiB)", "saved ratio"]
        header += ["PDM unbounded saved (MiB)"] if unbounded else []
        header += ["backprop ms", "PDM ms", "time ratio"]
        header += ["backprop CUDA peak (MiB)", "PDM CUDA peak (MiB)"] if has_cuda else []
        lines += ["", f"## {SWEEP_TITLES[kind]}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        points = sorted({(row["depth"], row["width"], row["batch"]) for row in kind_rows})
        for depth, width, batch in points:
            found = {m: _find(kind_rows, m, depth=depth, width=width, batch=batch) for m in METHODS}
            backprop, pdm = found["backprop"], found["pdm"]
            if backprop is None or pdm is None:
                continue
            cells = [str(depth) if kind != "cnn" else "CNN", str(width), str(batch)]
            cells += [f"{backprop['peak_saved_bytes'] / MIB:.2f}", f"{pdm['peak_saved_bytes'] / MIB:.2f}"]
            cells += [f"{pdm['peak_saved_bytes'] / backprop['peak_saved_bytes']:.3f}"]
            if unbounded:
                other = found["pdm-unbounded"]
                cells += [f"{other['peak_saved_bytes'] / MIB:.2f}" if other else "-"]
            cells += [f"{backprop['sec_per_update'] * 1e3:.1f}", f"{pdm['sec_per_update'] * 1e3:.1f}"]
            cells += [f"{pdm['sec_per_update'] / backprop['sec_per_update']:.2f}"]
            if has_cuda:
                cells += [
                    f"{r['peak_cuda_bytes'] / MIB:.1f}" if r["peak_cuda_bytes"] is not None else "-" for r in (backprop, pdm)
                ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: str) -> None:
    """Peak saved bytes against depth (and against batch size when measured), both methods, log y."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(kind, axis) for kind, axis in (("depth", "depth"), ("batch", "batch")) if any(r["kind"] == kind for r in rows)]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6 * max(len(panels), 1), 4), squeeze=False)
    for ax, (kind, axis) in zip(axes[0], panels):
        kind_rows = [row for row in rows if row["kind"] == kind]
        for method, marker in zip(METHODS, "osx"):
            points = sorted((row[axis], row["peak_saved_bytes"] / MIB) for row in kind_rows if row["method"] == method)
            if points:
                ax.plot(*zip(*points), marker=marker, label=method)
        first = kind_rows[0]
        fixed = (
            f"width {first['width']}, batch {first['batch']}"
            if kind == "depth"
            else f"depth {first['depth']}, width {first['width']}"
        )
        ax.set(
            xlabel=f"{axis} ({fixed})",
            ylabel="peak saved-for-backward (MiB)",
            yscale="log",
            xscale="log",
            title=f"One PPO update: {axis}",
        )
        ax.set_xticks(sorted({row[axis] for row in kind_rows}), [str(v) for v in sorted({row[axis] for row in kind_rows})])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sb3_pdm.benchmark.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ...")
    parser.add_argument("--quick", action="store_true", help="tiny grid (seconds), for CI")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS, help="sweeps to run")
    parser.add_argument("--repeats", type=int, default=None, help="timed updates per policy (default: the grid's)")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results", "memory"), help="output folder")
    parser.add_argument("--from-json", action="store_true", help="measure nothing: rebuild the reports from OUT/memory.json")
    parser.add_argument("--readme", default=None, help="also write the target checks into this README's memory section")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats <= 0:
        parser.error("--repeats must be positive")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    device = th.device("cuda" if th.cuda.is_available() else "cpu") if args.device == "auto" else th.device(args.device)
    if device.type == "cuda" and not th.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available")
    grid = QUICK_GRID if args.quick else FULL_GRID
    if args.repeats is not None:
        grid = Grid(**{**vars(grid), "repeats": args.repeats})
    if args.from_json:
        with open(os.path.join(args.out, "memory.json")) as file:
            rows = json.load(file)
    else:
        rows = run_grid(grid, device, tuple(args.kinds))
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "memory.json"), "w") as file:
            json.dump(rows, file, indent=2)
    with open(os.path.join(args.out, "memory.md"), "w") as file:
        file.write(markdown(rows, grid))
    plot(rows, os.path.join(args.out, "memory.png"))
    if args.readme is not None:
        table = ["| check | value | target | result | detail |", "|---|---|---|---|---|"]
        table += [_format_check(check) for check in checks(rows, grid)]
        device_line = f"Device: `{rows[0]['device']}` ({rows[0]['device_name']}).\n\n" if rows else ""
        replace_readme_section(args.readme, README_MEMORY_START, README_MEMORY_END, device_line + "\n".join(table) + "\n")
    print()
    for check in checks(rows, grid):
        print(_format_check(check).strip("| ").replace(" | ", "  |  "))
    if device.type != "cuda":
        print("No CUDA device: peak_cuda_bytes is null (CUDA peak memory and GPU time not measured).")
    print(f"\nResults: {os.path.join(args.out, 'memory.md')}")
    return rows


if __name__ == "__main__":
    main()
