"""Bank drafts at work: CorpLink DRAFT/DRAFTRFND, the INTRA draft messages, settlement.

The rules are :mod:`gateway.drafts` (pure); the register is the journal
(:mod:`gateway.journal.draft_store`).  This package joins them to the request
path, the clearing link and the clock (docs/bank-drafts.md).
"""
