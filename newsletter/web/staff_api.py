"""The staff JSON API: everything here needs a bearer token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from newsletter.content.schemas import ArticleIn, ArticleOut
from newsletter.content.service import upsert_article
from newsletter.errors import DomainError
from newsletter.web.api import ERROR_RESPONSES
from newsletter.web.deps import SessionDep
from newsletter.web.staff_auth import UNAUTHORIZED, StaffDep

router = APIRouter(prefix="/api/v1", tags=["staff"], responses=UNAUTHORIZED)


@router.post(
    "/articles",
    status_code=201,
    response_model=ArticleOut,
    responses={
        200: {"description": "An article with this canonical_url was updated"},
        **ERROR_RESPONSES,
    },
)
def create_article(payload: ArticleIn, session: SessionDep, staff: StaffDep) -> JSONResponse:
    """Add an article, or update the one with the same canonical_url (200)."""
    try:
        article, created = upsert_article(session, payload, source="api")
    except DomainError as e:
        session.rollback()
        return JSONResponse({"detail": str(e), "errors": [f"topics: {e}"]}, status_code=422)
    body = ArticleOut(
        id=article.id,
        title=article.title,
        canonical_url=article.canonical_url,
        summary=article.summary,
        image_url=article.image_url,
        image_alt=article.image_alt,
        author=article.author,
        published_at=article.published_at,
        topics=[topic.slug for topic in article.topics],
        created=created,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if created else 200)
