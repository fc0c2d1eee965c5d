"""``lucidflux eval``: its settings and its job on the shared runner."""
