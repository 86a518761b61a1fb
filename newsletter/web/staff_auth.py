"""Bearer-token authentication for the staff API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from newsletter.staff.models import StaffToken
from newsletter.staff.service import StaffTokenError, authenticate_staff_token
from newsletter.web.deps import SessionDep

_bearer = HTTPBearer(auto_error=False, description="A token from `newsletter staff token create`")

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown or revoked bearer token"}
}


def require_staff(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> StaffToken:
    """The caller's staff token, or 401 before the handler touches anything."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "a staff bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        return authenticate_staff_token(session, credentials.credentials)
    except StaffTokenError as e:
        raise HTTPException(401, str(e), headers={"WWW-Authenticate": "Bearer"}) from e


StaffDep = Annotated[StaffToken, Depends(require_staff)]
