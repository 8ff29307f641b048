"""A letter between two agencies one installation serves (a province and its department):
signed, sealed, received, registered and answered as between two installations, through
the installation's own inbox and status route, in the process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from congvan.states.errors import UnknownPeer
from congvan.workflow.bootstrap import Runtime
from tests.factories import actor, add_agency, document_row
from tests.installations import A, B, one_installation


def test_a_letter_to_an_agency_served_here_is_delivered_registered_and_acknowledged(
    make_runtime: Callable[..., Runtime], make_document: Callable[..., Any]
) -> None:
    # Given one installation serving A and B, no peer entry for either, A's letter to B
    pair = one_installation(make_runtime)
    runtime = pair.sender
    doc = pair.signed(make_document)

    # When A sends it and the delivery job runs
    runtime.engine.fire(doc, "send", actor("clerk"))
    [job] = pair.jobs(doc)
    assert runtime.runner.run(job) == "done"

    # Then B received the package from A, with its signed receipt, once
    dispatch, attempts = pair.dispatch(doc)
    assert (dispatch.state, [a.outcome for a in attempts]) == ("delivered", ["delivered"])
    [received] = pair.received()
    assert (received.sender_id, received.message_id) == (A, dispatch.message_id)
    with runtime.uow(readonly=True) as uow:
        assert uow.dispatches.receipt(dispatch.id) is not None

    # When B's clerk registers it and B's status job runs
    runtime.engine.fire_on("received", received.id, "register", actor("clerk", B))
    [status_job] = pair.status_jobs(received.id)
    assert runtime.runner.run(status_job) == "done"

    # Then A's dispatch and document are acknowledged with B's signed 03
    dispatch, _attempts = pair.dispatch(doc)
    assert dispatch.state == "acknowledged"
    assert document_row(runtime, doc).state == "acknowledged"
    with runtime.uow(readonly=True) as uow:
        assert [s.code for s in uow.dispatches.statuses_of(dispatch.id)] == ["03"]


def test_an_agency_neither_served_here_nor_a_peer_still_stops_the_send(
    make_runtime: Callable[..., Runtime], make_document: Callable[..., Any]
) -> None:
    pair = one_installation(make_runtime)
    c = "000.00.31.H57"
    add_agency(pair.sender, c, "UBND thành phố Huế", "UBND")
    doc = pair.signed(make_document, to=(B, c))

    with pytest.raises(UnknownPeer) as refused:
        pair.sender.engine.fire(doc, "send", actor("clerk"))

    assert refused.value.details["organ_ids"] == [c]
    assert document_row(pair.sender, doc).state == "signed"
