"""CorpLink and ISO/SWIFT codecs, the hardened XML parser, typed requests and replies."""
