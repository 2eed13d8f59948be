"""``blocktrace view``: step through a trace, or the diff of two, in the browser.

- :mod:`~blocktrace.view.tables`: the per-trace tables (steps, calls, value
  changes, hit counts) built in one streaming pass and cached;
- :mod:`~blocktrace.view.model`: the answers of the JSON API for a blocktrace
  trace (:class:`TraceModel`) and an EIP-3155 client trace (:class:`ClientModel`);
- :mod:`~blocktrace.view.session` and :mod:`~blocktrace.view.diff`: one trace or
  two and their diff;
- :mod:`~blocktrace.view.server`: the local HTTP server (token, read-only);
- :mod:`~blocktrace.view.html`: the self-contained ``--html`` page;
- ``static/``: the page itself (ES modules and CSS, no network).

The JSON API is documented in docs/VIEW.md.
"""
