"""``lucidflux restore``: its settings, its job on the shared runner, its per-file batch logic."""
