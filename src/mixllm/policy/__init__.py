"""mixllm.policy."""
