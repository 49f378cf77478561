"""Run a per-item function over many items: a local process pool, or a Ray cluster.

The work of a data stage is a pure function of one item (a song to separate, a clip to
tokenize), made by a picklable factory so each worker builds its model once. Items and results
are JSON-serialisable dicts, so the same stage runs unchanged on a laptop or through Ray Data.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from singsong.errors import SingsongError

Item = dict[str, Any]
Worker = Callable[[Item], Item]
ENGINES = ("local", "ray")


def run_map(
    factory: Callable[[], Worker],
    items: Sequence[Item],
    *,
    engine: str = "local",
    jobs: int = 1,
) -> Iterator[Item]:
    """Yield ``factory()(item)`` for every item, in completion order."""
    if engine not in ENGINES:
        raise SingsongError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if jobs < 1:
        raise SingsongError(f"jobs must be at least 1, got {jobs}")
    if not items:
        return iter(())
    if engine == "ray":
        return _run_ray(factory, items, jobs)
    if jobs == 1 or len(items) == 1:
        worker = factory()
        return (worker(item) for item in items)
    return _run_pool(factory, items, jobs)


def _run_pool(factory: Callable[[], Worker], items: Sequence[Item], jobs: int) -> Iterator[Item]:
    # 'spawn': workers start clean, without the parent's threads (torch) or native state.
    ctx = mp.get_context("spawn")
    with ctx.Pool(min(jobs, len(items)), initializer=_init_pool, initargs=(factory,)) as pool:
        yield from pool.imap_unordered(_call_pool, items)


_pool_worker: list[Worker] = []  # the one worker of this pool process, set by _init_pool


def _init_pool(factory: Callable[[], Worker]) -> None:
    _pool_worker.append(factory())


def _call_pool(item: Item) -> Item:
    return _pool_worker[0](item)


class _RayUDF:
    """A Ray Data class-based UDF: built once per actor, then called per row."""

    def __init__(self, factory: Callable[[], Worker]) -> None:
        self.worker = factory()

    def __call__(self, row: dict[str, str]) -> dict[str, str]:
        return {"json": json.dumps(self.worker(json.loads(row["json"])))}


def _run_ray(factory: Callable[[], Worker], items: Sequence[Item], jobs: int) -> Iterator[Item]:
    try:
        import ray
    except ImportError:
        raise SingsongError("--engine ray needs Ray: pip install 'singsong[ray]'") from None
    started = not ray.is_initialized()
    if started:  # a local cluster; with RAY_ADDRESS set, ray.init joins that cluster instead
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    try:
        # Rows carry JSON strings: Arrow then stores them as plain strings, whatever is inside.
        # A few blocks per worker, so every actor gets work.
        rows = ray.data.from_items(
            [{"json": json.dumps(item)} for item in items],
            override_num_blocks=min(len(items), 4 * jobs),
        )
        # A class-based UDF: Ray builds one per actor; its stubs only describe function UDFs.
        udf: Any = _RayUDF
        results = rows.map(udf, fn_constructor_args=(factory,), concurrency=jobs, num_cpus=1)
        for row in results.iter_rows():
            yield json.loads(row["json"])
    finally:
        if started:
            ray.shutdown()
