"""Sanctions screening (黑名单检查): list files, name normalisation, matching, decisions.

docs/foreign-currency.md §5.  Pure and synchronous: the caller loads a
``ScreeningLists`` version (and swaps it on reload), then calls ``screen``.
"""
