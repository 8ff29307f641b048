"""Routes for reviewers: the review queue and the check results of a document."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from congvan.actions.review import results_view
from congvan.states.policy import READ_ROLES, REVIEWER

from .auth import PrincipalDep, RuntimeDep, require
from .views import load_visible, summary

router = APIRouter(prefix="/v1", tags=["review"])


@router.get("/review-queue", summary="Drafts of the caller's agency waiting for a reviewer")
def review_queue(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    require(principal, frozenset({REVIEWER}), "The review queue")
    checks = runtime.review.checks
    items = []
    with runtime.uow(readonly=True) as uow:
        for row in uow.checks.queue(principal.agency_id, limit):
            view = results_view(uow.checks.for_revision(row["id"], row["revision"]), checks)
            counts: dict[str, int] = {}
            for r in view["results"]:
                key = "cleared" if r["cleared"] else r["status"]
                counts[key] = counts.get(key, 0) + 1
            items.append(
                {
                    **summary(row),
                    "revision": row["revision"],
                    "checks": {
                        "counts": counts,
                        "pending": view["pending"],
                        "ready_to_approve": view["cleared"],
                    },
                }
            )
    return {"items": items}


@router.get(
    "/documents/{document_id}/checks",
    summary="Results of the review checks on the current revision",
)
def document_checks(
    document_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, READ_ROLES, "Reading documents")
    with runtime.uow(readonly=True) as uow:
        row = load_visible(uow, document_id, principal.agency_id)
        view = results_view(
            uow.checks.for_revision(row["id"], row["revision"]), runtime.review.checks
        )
    return {
        "document_id": document_id,
        "revision": row["revision"],
        "submitted_revision": row["submitted_revision"],
        **view,
    }
