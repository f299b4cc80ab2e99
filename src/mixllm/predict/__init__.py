"""mixllm.predict."""
