"""The official PAGE 2019 and ALTO 4.4 schemas (committed under quire/documents/schemas), loaded offline."""
from functools import cache
from pathlib import Path

from lxml import etree

SCHEMAS = Path(__file__).resolve().parents[2] / "platform" / "quire" / "documents" / "schemas"


@cache
def schema(fmt: str) -> etree.XMLSchema:
    name = {"page": "pagecontent-2019-07-15.xsd", "alto": "alto-4-4.xsd"}[fmt]
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name)))


def assert_valid(data: bytes, fmt: str) -> etree._Element:
    """Parse `data` and validate it against the schema of `fmt`; returns the root element."""
    root = etree.fromstring(data)
    checker = schema(fmt)
    assert checker.validate(root), f"{fmt} export is not schema-valid: {checker.error_log}"
    return root
