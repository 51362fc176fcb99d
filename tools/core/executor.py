"""One executor interface for batch work (relaxing candidates, MD replicas, motif relaxations): in-process by
default, a Dask distributed cluster when MATSEARCH_DASK_ADDRESS is set. Progress and cancellation behave the same
in both; results always come back in input order, so a seeded search gives the same answer either way."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tools.core.errors import ToolRuntimeError
from tools.core.registry import Cancelled, ProgressFn
from tools.core.settings import Settings


class Executor(Protocol):
    """Maps a picklable, module-level function over items."""

    name: str

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Any]: ...


class InProcessExecutor:
    """Runs items one after another in this process."""

    name = "in-process"

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Any]:
        out = []
        for i, item in enumerate(items):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            out.append(fn(item))
            if progress:
                progress(i + 1, len(items), None)
        return out


class DaskExecutor:
    """Submits items to a Dask distributed scheduler; workers keep models loaded between tasks."""

    name = "dask"

    def __init__(self, address: str) -> None:
        from distributed import Client

        try:
            self.client = Client(address, timeout=30, set_as_default=False)
        except Exception as exc:  # an unreachable scheduler is a runtime problem with a readable message
            raise ToolRuntimeError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        self.address = address

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Any]:
        futures = self.client.map(fn, list(items), pure=False)
        results: list[Any] = []
        try:
            for future in futures:  # gathered in input order; workers run them concurrently meanwhile
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                results.append(future.result())
                if progress:
                    progress(len(results), len(futures), None)
        except BaseException:
            self.client.cancel(futures)
            raise
        return results


_dask: dict[str, DaskExecutor] = {}
_lock = threading.Lock()


def get_executor(settings: Settings) -> Executor:
    """The executor the settings ask for (one Dask client per scheduler address per process)."""
    if not settings.dask_address:
        return InProcessExecutor()
    with _lock:
        if settings.dask_address not in _dask:
            _dask[settings.dask_address] = DaskExecutor(settings.dask_address)
        return _dask[settings.dask_address]
