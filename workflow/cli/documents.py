"""The ``documents`` command: a document as the API shows it."""

from __future__ import annotations

import argparse
import json

from congvan.states.errors import NotFound

from ..settings import Settings
from .runtime import Subparsers, runtime_for


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser("documents", help="read documents")
    dsub = p.add_subparsers(dest="action", required=True)
    d = dsub.add_parser("show", help="a document, its signer and its signing's timeliness")
    d.add_argument("id", help="the document's id")
    d.add_argument("--json", action="store_true", help="the whole view, as GET returns it")
    p.set_defaults(func=cmd_documents)


def cmd_documents(args: argparse.Namespace, settings: Settings) -> int:
    from ..showing import document_lines
    from ..views import document_view

    with runtime_for(settings) as runtime, runtime.uow(readonly=True) as uow:
        row = uow.documents.get(args.id)
        if row is None:
            raise NotFound("No such document.", document_id=args.id)
        view = document_view(uow, row)
    if args.json:
        print(json.dumps(view, ensure_ascii=False, indent=2, default=str))
    else:
        print("\n".join(document_lines(view)))
    return 0
