"""``lucidflux`` whose ``--devices`` workers die like an OOM-killed process (exit 137), for tests.

``LUCIDFLUX_TEST_KILL=NAME:MARKER``: a worker handed the file NAME exits with code 137 before
touching it, unless MARKER exists; the first death creates MARKER, so the retry succeeds.
Workers are spawned, and a spawned process imports the parent's main script first, so the patch
below reaches them without any hook in the product code.
"""

from __future__ import annotations

import os
from pathlib import Path

from lucidflux_cli.restore import batch

_restore_file = batch.restore_file


def _dying_restore_file(item, *args, **kwargs):
    name, _, marker = os.environ.get("LUCIDFLUX_TEST_KILL", "").partition(":")
    if item.path.name == name and not Path(marker).exists():
        Path(marker).touch()
        os._exit(137)
    return _restore_file(item, *args, **kwargs)


batch.restore_file = _dying_restore_file

if __name__ == "__main__":
    from lucidflux_cli.commands.main import main

    main()
