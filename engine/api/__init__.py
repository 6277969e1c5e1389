"""The HTTP service (``casecheck serve``): FastAPI on uvicorn, every answered check logged to a database.

One module per job: ``settings`` (settings, ``CASECHECK_*`` variables, limits, the API keys file),
``errors`` (``ApiError``, error bodies, the exception handlers), ``service`` (checking and logging, no
HTTP), ``schemas`` (the answers' models for the OpenAPI document), ``responses`` (JSON encoding),
``routes`` (the routes and the API key check), ``app`` (the app factory) and ``runner`` (uvicorn);
the docs page is ``docs.html``.
"""

from engine.api.app import app_from_env, create_app
from engine.api.runner import serve
from engine.api.settings import Settings, load_api_keys

__all__ = ["Settings", "app_from_env", "create_app", "load_api_keys", "serve"]
