"""The run engine: settings, the one run loop and its schedulers, per-file batch logic."""
