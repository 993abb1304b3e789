"""Models: name resolution, the causal-LM generator, LoRA training."""
