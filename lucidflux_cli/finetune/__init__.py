"""``lucidflux train``: its settings, its run on the shared runner's rules, its validation page."""
