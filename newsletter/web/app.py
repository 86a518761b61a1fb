"""The FastAPI application: `uvicorn --factory newsletter.web.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from newsletter.config import Settings, get_settings
from newsletter.db import get_session_factory
from newsletter.web import api, campaigns_api, dev_inbox, previews, public, staff_api
from newsletter.web.deps import PageError
from newsletter.web.limits import BodySizeLimit


def _validation_error(request: Request, exc: Exception) -> Response:
    """422 with one readable line per problem; 400 when the body is not JSON at all."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return JSONResponse(
            {"detail": "malformed JSON body", "errors": ["body: not valid JSON"]}, status_code=400
        )
    messages = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        messages.append(f"{'.'.join(location) or 'body'}: {message}")
    return JSONResponse({"detail": "; ".join(messages), "errors": messages}, status_code=422)


def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return exc.response


def create_app(
    settings: Settings | None = None, session_factory: sessionmaker[Session] | None = None
) -> FastAPI:
    """The web app for `settings`, with sessions from `session_factory` (tests pass theirs)."""
    settings = settings or get_settings()
    app = FastAPI(
        title=f"{settings.publisher_name} newsletter API",
        version="1",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.session_factory = session_factory or get_session_factory()
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(PageError, _page_error)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.include_router(public.router)
    app.include_router(api.router)
    app.include_router(staff_api.router)
    app.include_router(campaigns_api.router)
    app.include_router(campaigns_api.segments_router)
    app.include_router(previews.staff_router)
    if settings.dev_inbox_enabled:
        app.include_router(dev_inbox.router)
        app.include_router(previews.dev_router)
    return app
