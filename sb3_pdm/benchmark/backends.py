"""
Where the benchmark's runs execute: a local process pool (the default) or Ray tasks, on a local Ray instance or on a
cluster (``docs/cluster.md``). Either way each run is trained by :func:`~sb3_pdm.benchmark.runner.train` in a worker
and its record comes back to the calling process, which writes it: workers need no access to the results folder.
"""

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

from sb3_pdm.benchmark.runner import RunSpec, exit_with_parent, train

#: A run to do: its spec and its raw hyperparameter entry (shipped to the worker, which may not have the files).
Task = tuple[RunSpec, dict[str, Any]]
#: A finished run: its spec and either its record or the exception that ended it.
Outcome = tuple[RunSpec, dict[str, Any] | BaseException]

BACKENDS = ("process", "ray")


def run_in_pool(tasks: list[Task], workers: int) -> Iterator[Outcome]:
    """
    Train the runs in a pool of ``workers`` spawned processes, yielding each outcome as it finishes. Workers end with
    the calling process, even when it is killed (:func:`~sb3_pdm.benchmark.runner.exit_with_parent`).

    :param tasks: The runs.
    :param workers: Processes in parallel.
    """
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=exit_with_parent, initargs=(os.getpid(),)
    ) as pool:
        futures = {pool.submit(train, spec, entry): spec for spec, entry in tasks}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], future.result() if error is None else error


def run_on_ray(tasks: list[Task], address: str | None = None, num_cpus: int | None = None) -> Iterator[Outcome]:
    """
    Train each run as a Ray task of one CPU, yielding each outcome as it finishes.

    Ray is started here unless it already is (then the caller's instance is used and left running): connected to the
    cluster at ``address`` (``"auto"``: the one in ``RAY_ADDRESS`` or started on this machine by ``ray start``), or, with
    ``address=None``, as a new local instance of ``num_cpus`` CPUs. A task lost with its node is retried by Ray on
    another node; when this process ends, Ray cancels its tasks that are still running.

    :param tasks: The runs.
    :param address: Address of a running Ray cluster; ``None`` starts a local instance.
    :param num_cpus: CPUs of the local instance (default: all); unused with ``address``.
    """
    import ray

    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = dict(address=address, include_dashboard=False, log_to_driver=False)
        if address is None:
            options.update(address="local", num_cpus=num_cpus)
        ray.init(**options)
    remote_train = ray.remote(num_cpus=1)(train)
    specs = {remote_train.remote(spec, entry): spec for spec, entry in tasks}
    pending = list(specs)
    try:
        while pending:
            (ready,), pending = ray.wait(pending, num_returns=1)
            try:
                outcome: dict[str, Any] | BaseException = ray.get(ready)
            except Exception as error:  # the run's own exception, wrapped by Ray (RayTaskError)
                outcome = error
            yield specs[ready], outcome
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
