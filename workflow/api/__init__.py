"""The HTTP API under /v1 (FastAPI)."""

from .app import create_app

__all__ = ["create_app"]
