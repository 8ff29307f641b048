"""Routes for reviewers: the review queue and the check results of a document."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response

from congvan.actions.review import results_view
from congvan.states.policy import READ_ROLES, REVIEWER
from congvan.storage.agencies import Principal
from congvan.storage.audit import timestamp

from ..views import summary
from .auth import requires
from .bodies import JsonRoute
from .deps import ChecksDep, ReadUowDep
from .findings import ChecksOut, QueuePage
from .outputs import AUTHENTICATED, errors, sends, versioned_etag
from .paging import PagingDep, cursor_moment, page, paging
from .views import load_visible

router = APIRouter(
    prefix="/v1", tags=["review"], responses=errors(*AUTHENTICATED), route_class=JsonRoute
)


@router.get(
    "/review-queue",
    summary="Drafts of the caller's agency waiting for a reviewer, oldest first",
    response_model=QueuePage,
)
def review_queue(
    uow: ReadUowDep,
    checks: ChecksDep,
    principal: Annotated[Principal, requires(frozenset({REVIEWER}), "The review queue")],
    params: PagingDep,
) -> dict[str, Any]:
    at = paging(params, (str, str))
    after = None
    if at.after is not None:
        updated_at, last_id = at.after
        after = (cursor_moment(updated_at), str(last_id))
    with uow:
        rows = page(
            lambda _after, n: uow.checks.queue(principal.agency_id, n, after),
            lambda row: (timestamp(row.updated_at), row.id),
            at,
        )
        items = []
        for row in rows["items"]:
            view = results_view(uow.checks.for_revision(row.id, row.revision), checks)
            counts: dict[str, int] = {}
            for r in view["results"]:
                key = "cleared" if r["cleared"] else r["status"]
                counts[key] = counts.get(key, 0) + 1
            items.append(
                {
                    **summary(row),
                    "revision": row.revision,
                    "checks": {
                        "counts": counts,
                        "pending": view["pending"],
                        "ready_to_approve": view["cleared"],
                    },
                }
            )
    return {**rows, "items": items}


@router.get(
    "/documents/{document_id}/checks",
    summary="Results of the review checks on the current revision",
    response_model=ChecksOut,
    response_model_exclude_unset=True,  # each result's details as the check wrote them
    responses={**errors(404), **sends(200, "ETag")},
)
def document_checks(
    document_id: str,
    uow: ReadUowDep,
    checks: ChecksDep,
    principal: Annotated[Principal, requires(READ_ROLES, "Reading documents")],
    response: Response,
) -> dict[str, Any]:
    with uow:
        row = load_visible(uow, document_id, principal.agency_id)
        view = results_view(uow.checks.for_revision(row.id, row.revision), checks)
    # Cleared only for the revision in review: one returned (or edited) since is not.
    in_review = row.submitted_revision == row.revision
    awaiting = None if not view["pending"] else "checks" if in_review else "submission"
    body = {
        "document_id": document_id,
        "version": row.version,
        "revision": row.revision,
        "submitted_revision": row.submitted_revision,
        **view,
        "awaiting": awaiting,
        "cleared": view["cleared"] and in_review,
    }
    # approve takes it as If-Match: the document as these results were read, nothing newer
    response.headers["ETag"] = versioned_etag(row.version, body)
    return body
