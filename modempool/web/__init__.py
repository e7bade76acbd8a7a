"""The HTTP API (FastAPI on uvicorn): `create_app(config)`, served by `modempool serve` or
inside `modempool run` (see docs/http.md)."""

from modempool.web.app import create_app

__all__ = ["create_app"]
