"""``lucidflux doctor``: what this machine, its GPUs and its caches can run."""
