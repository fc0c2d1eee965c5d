"""lucidflux-cli: restore degraded photos with LucidFlux from the command line."""

__version__ = "0.1.0"
