"""What an upstream LLM can do: tools, JSON schema output, images, audio, files, its context
window and longest answer, and its price for cached prompt tokens.

An upstream that declares nothing is assumed capable of everything, so configurations written
before capabilities existed route as they did. A request that needs a capability is routed
only among LLMs that have it (:func:`capable`).

>>> caps = Capabilities.from_config({"vision": False, "context_tokens": 8192})
>>> caps.vision, caps.tools, caps.context_tokens
(False, True, 8192)
>>> capable(caps, {"vision": "1 image part(s)"}, prompt_tokens=10, answer_tokens=100)
'vision (1 image part(s))'
>>> capable(caps, {}, prompt_tokens=8000, answer_tokens=500) is not None
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mixllm.errors import ConfigError

__all__ = ["FEATURES", "Capabilities", "capable"]

#: The yes/no capabilities a request may need.
FEATURES = ("tools", "json_schema", "vision", "audio", "files")


@dataclass(frozen=True)
class Capabilities:
    """One upstream's capabilities; ``None`` limits are unknown (not checked)."""

    tools: bool = True
    json_schema: bool = True
    vision: bool = True
    audio: bool = True
    files: bool = True
    context_tokens: int | None = None
    max_output_tokens: int | None = None
    price_cached_in_per_mtok: float | None = None

    @classmethod
    def from_config(
        cls, raw: Mapping[str, Any] | None, *, where: str = "capabilities"
    ) -> Capabilities:
        """From a config table or admin request; unknown keys and wrong types are errors."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}={raw!r}; expected a table of capabilities")
        known = [*FEATURES, "context_tokens", "max_output_tokens", "price_cached_in_per_mtok"]
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown capabilities {unknown}; expected some of {known}")
        values: dict[str, Any] = {}
        for name in FEATURES:
            if name in raw:
                if not isinstance(raw[name], bool):
                    raise ConfigError(f"{where}.{name}={raw[name]!r}; expected true or false")
                values[name] = raw[name]
        for name in ("context_tokens", "max_output_tokens"):
            value = raw.get(name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**9:
                    raise ConfigError(f"{where}.{name}={value!r}; expected an integer >= 1")
                values[name] = value
        price = raw.get("price_cached_in_per_mtok")
        if price is not None:
            ok = isinstance(price, int | float) and not isinstance(price, bool)
            if not (ok and math.isfinite(price) and 0 <= price <= 1e12):
                raise ConfigError(
                    f"{where}.price_cached_in_per_mtok={price!r}; expected a number in [0, 1e12]"
                )
            values["price_cached_in_per_mtok"] = float(price)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """As JSON for the admin API."""
        return asdict(self)


def capable(
    caps: Capabilities, needs: Mapping[str, str], *, prompt_tokens: float, answer_tokens: int
) -> str | None:
    """``None`` when an LLM with ``caps`` can serve a request that ``needs`` these features
    (feature → why) with a prompt of ``prompt_tokens`` and room for ``answer_tokens`` (at
    least 1 token when the LLM limits its answers); else the first thing it lacks, in words."""
    for name, why in needs.items():
        if not getattr(caps, name, True):
            return f"{name} ({why})"
    if caps.context_tokens is not None:
        room = min(answer_tokens, caps.max_output_tokens or answer_tokens)
        if prompt_tokens + max(room, 1) > caps.context_tokens:
            return (
                f"a context window of {math.ceil(prompt_tokens) + max(room, 1)} tokens "
                f"(prompt ~{math.ceil(prompt_tokens)} + answer {max(room, 1)})"
            )
    return None
