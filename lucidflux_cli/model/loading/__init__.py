"""Reading released checkpoints: every layout the community ships, strictly.

Each loader infers the model's configuration from the tensors it reads (the way spandrel
detects architectures), so the 12B release and tiny test weights go through one path.
"""
