"""mixllm.embed."""
