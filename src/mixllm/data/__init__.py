"""mixllm.data."""
