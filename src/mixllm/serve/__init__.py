"""The OpenAI-compatible routing gateway (``pip install 'mixllm[serve]'``).

``create_app(router, backends, store, settings)`` builds the FastAPI app; ``mixllm serve`` runs
it with uvicorn. Backends answer for one LLM each: :class:`OpenAIBackend` (any OpenAI-compatible
upstream), :class:`ReplayBackend` (recorded answers of a dataset, offline) and
:class:`FakeBackend` (tests). See docs/gateway.md.
"""

from mixllm.serve.app import create_app
from mixllm.serve.backends import Backend, OpenAIBackend
from mixllm.serve.chat import ChatResult
from mixllm.serve.fake import FakeBackend
from mixllm.serve.gateway import Gateway
from mixllm.serve.replay import ReplayBackend
from mixllm.serve.restore import open_state, restore_router
from mixllm.serve.settings import ApiKey, Profile, Settings, load_settings
from mixllm.serve.store import Store, StoreDamagedError

__all__ = [
    "ApiKey",
    "Backend",
    "ChatResult",
    "FakeBackend",
    "Gateway",
    "OpenAIBackend",
    "Profile",
    "ReplayBackend",
    "Settings",
    "Store",
    "StoreDamagedError",
    "create_app",
    "load_settings",
    "open_state",
    "restore_router",
]
