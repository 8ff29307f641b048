"""The formats two congvan instances exchange, each signed by an agency's organisational key.

- ``package``: ``congvan-package/1``, a signed document for one recipient agency
  (``writing.write_package``, ``open_package``); ``acceptance.verify_package`` judges one.
- ``receipts``: ``congvan-receipt/1``, the receiver's signed status 01
  (``make_receipt``, ``verify_receipt``).
- ``status``: ``congvan-status/1``, the receiver's signed statuses 02–06
  (``make_status``, ``verify_status``).
- ``envelope``: what the three share, a canonical JSON body under a detached agency CMS.
- ``archive``: reading a peer's ZIP archive without trusting it.
- ``evidence``: ``congvan-evidence/2``, one document's proof for a dispute (written from
  the database, ``evidence_checks.verify_bundle`` judges it offline).

Every refusal is an ``ExchangeRefused`` of ``states.errors`` with a ``reason``.
"""
