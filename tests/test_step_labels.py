"""The pipeline's step labels, compared with the checked-in list in tests/step_labels.txt.

Dataflow matches the steps of a running job to a new graph by label (``--update``), so a renamed
step is a deliberate act: change the code, then regenerate the list with
``python -m tests.test_step_labels > tests/step_labels.txt`` and review the diff.

Listed: every transform framebeam applies (its full label), not the insides of Beam's own
composites (those follow the Beam version).
"""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam
from apache_beam.pipeline import PipelineVisitor

from pipelines.assemble import build_pipeline
from pipelines.options import JobOptions

LABELS_FILE = Path(__file__).with_name("step_labels.txt")
# The graphs the CLI can build: convert (no decoding), run, run against a baseline, and with slices.
JOBS = {
    "convert": JobOptions(command="convert", inputs=("in/*.jsonl",), output="out"),
    "run": JobOptions(command="run", inputs=("in/*.jsonl",), output="out", decode=True),
    "run --baseline": JobOptions(command="validate", inputs=("in/*.jsonl",), output="out", decode=True, baseline="old-out"),
    "run --slice-by": JobOptions(command="run", inputs=("in/*.jsonl",), output="out", decode=True, baseline="previous",
                                 slice_by=("source_id",)),
}


def _ours(transform: beam.PTransform | None) -> bool:
    return transform is not None and type(transform).__module__.split(".")[0] in ("transforms", "pipelines")


class _Labels(PipelineVisitor):
    def __init__(self):
        self.labels: list[str] = []

    def _note(self, node) -> None:
        parent = node.parent
        if node.full_label and (parent is None or not parent.full_label or _ours(parent.transform)):
            self.labels.append(node.full_label)

    def enter_composite_transform(self, node) -> None:
        self._note(node)

    def visit_transform(self, node) -> None:
        self._note(node)


def step_labels(job: JobOptions) -> list[str]:
    p = beam.Pipeline()
    build_pipeline(p, job, None, "run-id")
    visitor = _Labels()
    p.visit(visitor)
    return sorted(visitor.labels)


def render() -> str:
    return "".join(f"# {name}\n" + "".join(f"{label}\n" for label in step_labels(job)) for name, job in JOBS.items())


def test_step_labels_match_the_checked_in_list():
    assert render() == LABELS_FILE.read_text(), (
        "the pipeline's step labels changed: a renamed step breaks `--update` of running Dataflow jobs. If it is "
        "deliberate, regenerate with `python -m tests.test_step_labels > tests/step_labels.txt` and review the diff.")


def test_labels_are_unique_literals():
    """Of each graph in the checked-in list (which the test above holds equal to the pipeline's)."""
    graphs = [chunk.splitlines()[1:] for chunk in ("\n" + LABELS_FILE.read_text()).split("\n# ")[1:]]
    assert len(graphs) == len(JOBS)
    for labels in graphs:
        assert labels and len(labels) == len(set(labels))
        assert all(label.replace("/", "").replace("_", "").isalnum() for label in labels), labels


if __name__ == "__main__":
    print(render(), end="")
