"""Correspondence: everything that is not a payment instruction.

CorpLink ``NTFY``, ``INQ``, ``RPLY`` and ``BAL`` (docs/protocol.md §4), the
clearing side's inquiries and replies (``ccms.314`` / ``ccms.315``), netting
and settlement notices (docs/routing-rules.md §5) and incoming credits with their
account check (docs/clearing-link.md §5-§6).  The journal stays the truth: every
outbound ccms message is journaled before it is published and re-sent until
its ``ccms.990``, exactly like a payment (docs/clearing-link.md §1).
"""
