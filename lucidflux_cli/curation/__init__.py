"""``lucidflux data filter|degrade|merge``: their settings and jobs on the shared runner."""
