"""The LucidFlux model: configuration, loading, modules, pipeline, tiling, acceleration."""
