"""mixllm: route each query to the LLM with the best quality for the money and the wait."""

from __future__ import annotations
