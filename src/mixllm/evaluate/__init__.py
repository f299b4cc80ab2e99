"""mixllm.evaluate."""
