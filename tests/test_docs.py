"""Docs generated from code must be current: one source of truth for tables and finding codes."""
from pathlib import Path

from transforms.findings import findings_markdown
from transforms.schema import tables_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_tables_doc_is_generated_from_the_schema():
    assert (DOCS / "TABLES.md").read_text() == tables_markdown(), "run: python -m transforms.schema > docs/TABLES.md"


def test_findings_doc_is_generated_from_the_codes():
    assert (DOCS / "FINDINGS.md").read_text() == findings_markdown(), "run: python -m transforms.findings > docs/FINDINGS.md"


def test_readme_and_docs_link_only_to_files_that_exist():
    import re

    for page in [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_format_doc_exists_and_the_readme_cites_no_missing_document():
    readme = (DOCS.parent / "README.md").read_text()
    assert "docs/FORMAT.md" in readme
    assert "FORMAT order" not in readme and "Example-1 rule" not in readme


def test_every_finding_code_the_format_doc_names_exists():
    import re

    from transforms.findings import CODES

    fmt = (DOCS / "FORMAT.md").read_text()
    named = {c for c in re.findall(r"`([a-z]+(?:_[a-z0-9]+)+)`", fmt) if c.split("_")[0] in {
        "mask", "roi", "seed", "label", "duplicate", "invalid", "poly", "json", "record", "missing", "wrong", "video", "shard"}}
    named -= {"mask_labels", "seed_example", "join_rule", "context_id", "content_type"}
    assert named and named <= set(CODES), named - set(CODES)
