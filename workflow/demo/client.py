"""The demo's HTTP client: each call as one of the cast, checked against the answer it expects."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx

from congvan.states.timeliness import VIETNAM

T = TypeVar("T")


class DemoFailed(Exception):
    pass


def clock_time(at: str | datetime) -> str:
    """A moment (an API's ISO text with its offset, or an aware datetime) as the time of
    day in Viet Nam, as every time the demo prints is."""
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    return f"{moment.astimezone(VIETNAM):%H:%M:%S}"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll ``probe`` until it answers something, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise DemoFailed(f"still waiting after {timeout:.0f}s for {what}")
        time.sleep(0.05)


class Demo:
    def __init__(self, client: httpx.Client, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens
        self.step_no = 0

    def call(self, who: str, method: str, path: str, *, expect: int, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        response = self.client.request(method, path, headers=headers, **kwargs)
        body = response.json()
        if response.status_code != expect:
            raise DemoFailed(
                f"{method} {path} as {who}: expected {expect}, got "
                f"{response.status_code} {json.dumps(body, ensure_ascii=False)}"
            )
        return body

    def download(self, who: str, path: str) -> bytes:
        """The bytes of a binary answer (a PDF, a manifest), which must be 200."""
        response = self.client.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}"})
        if response.status_code != 200:
            raise DemoFailed(f"GET {path} as {who}: expected 200, got {response.status_code}")
        return response.content

    def step(self, text: str) -> None:
        self.step_no += 1
        print(f"\n{self.step_no}. {text}")

    def create(self, meta: dict[str, Any], pdf: bytes, key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        doc: dict[str, Any] = self.call(
            "văn thư",
            "POST",
            "/v1/documents",
            expect=201,
            headers=headers,
            data={"metadata": json.dumps(meta, ensure_ascii=False)},
            files={"main": (f"{meta['number']}.pdf", pdf, "application/pdf")},
        )
        return doc

    def fire(
        self, who: str, doc_id: str, event: str, *, expect: int = 200, **body: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            who, "POST", f"/v1/documents/{doc_id}/events/{event}", expect=expect, json=body or None
        )
        return result

    def checks(self, doc_id: str) -> dict[str, Any]:
        """Wait (polling, with a deadline) for the review job to record every check."""

        def done() -> dict[str, Any] | None:
            view: dict[str, Any] = self.call(
                "chuyên viên", "GET", f"/v1/documents/{doc_id}/checks", expect=200
            )
            return None if view["pending"] else view

        return wait_for("the review checks", done)

    def show_checks(self, view: dict[str, Any]) -> None:
        failed = [r for r in view["results"] if not r["cleared"]]
        print(
            f"   {len(view['results'])} checks on revision {view['revision']}: "
            f"{len(view['results']) - len(failed)} cleared, {len(failed)} not"
        )
        for r in failed:
            print(f"   ✗ {r['code']} ({r['severity']}): {r['message']['vi']}")
