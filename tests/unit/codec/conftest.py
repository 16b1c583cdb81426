"""Fixtures shared by the codec tests: the CorpLink codec and its response schema."""

from __future__ import annotations

import pytest
from lxml import etree

from gateway.codec.corplink import CorpLinkCodec
from gateway.paths import corplink_schema_path


@pytest.fixture(scope="module")
def codec() -> CorpLinkCodec:
    return CorpLinkCodec()


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    """codecs/corplink.xsd, which every rendered response must satisfy (corplink.md §5)."""
    return etree.XMLSchema(etree.parse(str(corplink_schema_path())))
