"""Reading (and measuring) files a few ahead in threads, the results still taken in order.

Decoders (Pillow, OpenCV) and numpy release the GIL on whole images, so threads keep every core
busy without the start-up and pickling of worker processes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def cpu_cores() -> int:
    """Cores this process may run on (its affinity, where the system says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def map_ahead(
    function: Callable[[Item], Result], items: Iterable[Item], threads: int, ahead: int | None = None
) -> Iterator[Result]:
    """``map(function, items)``, worked by ``threads`` threads at most ``ahead`` items (default: two
    per thread) beyond the one the caller takes, so memory stays bounded; results come in order.
    One thread: a plain map. Leaving early (break, an exception) cancels the items not started
    and waits for those running."""
    if threads <= 1:
        yield from map(function, items)
        return
    window = max(ahead or 2 * threads, 1)
    remaining = iter(items)
    with ThreadPoolExecutor(threads, thread_name_prefix="lucidflux-ahead") as pool:
        pending: deque[Future[Result]] = deque()
        try:
            for item in remaining:
                pending.append(pool.submit(function, item))
                if len(pending) >= window:
                    break
            while pending:
                done = pending.popleft()
                for item in remaining:  # keep the window full while the caller works
                    pending.append(pool.submit(function, item))
                    break
                yield done.result()
        finally:
            for future in pending:
                future.cancel()
