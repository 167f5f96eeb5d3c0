"""Docs generated from code must be current: one source of truth for tables and finding codes."""
from pathlib import Path

from transforms.findings import findings_markdown
from transforms.schema import tables_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_tables_doc_is_generated_from_the_schema():
    assert (DOCS / "TABLES.md").read_text() == tables_markdown(), "run: python -m transforms.schema > docs/TABLES.md"


def test_findings_doc_is_generated_from_the_codes():
    assert (DOCS / "FINDINGS.md").read_text() == findings_markdown(), "run: python -m transforms.findings > docs/FINDINGS.md"
