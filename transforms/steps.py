"""The pipeline's steps: one chunk of records through each, as plain functions, and the thin
PTransforms that run them on Beam.

    ReadFrames | Validate | JoinMasks | DecodeMasks | WriteTables

Elements are chunks of up to ~1,000 records, not single frames: Beam's per-element cost (~25 us) is
then paid once per chunk. Step labels are stable CamelCase (Dataflow keys updates and monitoring on them).
"""
from __future__ import annotations

import zlib
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam import typehints
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from transforms.coders import ChunkCoder
from transforms.findings import Finding
from transforms.flattening import TableRows, chunk_tables, finding_row, frame_issue_rows, frame_row, record_problem_row
from transforms.joining import MaskLabels, join_frame
from transforms.mask_requests import MaskRequest, plan_masks, too_many_masks
from transforms.portable import MAIN, SPREAD_BUCKETS, Gather, Spread, Tagged, only, tag_outputs
from transforms.reading import ReadLimits, RecordChunk, ShardPart, chunk_records, expand_input, iter_shard, plan_shard
from transforms.schema import IssueRow
from transforms.storage import Target
from transforms.tuning import WorkerSetup
from transforms.uris import redact_uri
from transforms.validation import DEFAULT_MAX_JSON_DEPTH, Frame, validate_record
from transforms import progress, writing

FRAME_IDS = "frame_ids"
MASK_REQUESTS = "mask_requests"
PENDING_FRAMES = "pending_frames"
FRAME_SLICES = "frame_slices"  # (frame key, the frame's --slice-by values) of frames with masks to decode
DUPLICATE_BUCKETS = 64
WRITE_BUCKETS = 16  # files per table (before max_rows splits them) when rows are grouped to be written


class ValidatedChunk(NamedTuple):
    shard: str
    frames: list[Frame]
    problems: list[IssueRow]  # of records that are not frames


# --- plain functions, one chunk at a time --------------------------------------------------------------

def validate_chunk(chunk: RecordChunk, max_json_depth: int = DEFAULT_MAX_JSON_DEPTH) -> ValidatedChunk:
    """Parse and validate every record of a chunk; what is not a frame becomes an issues row."""
    shard = chunk.shard
    frames: list[Frame] = []
    problems: list[IssueRow] = []
    for rec in chunk.records:
        if rec.problem is not None:
            problems.append(record_problem_row(shard, rec, rec.problem))
            continue
        frame, finding = validate_record(rec.data, shard, rec.line, max_json_depth)
        if finding is not None:
            problems.append(record_problem_row(shard, rec, finding))
        else:
            frames.append(frame)
    return ValidatedChunk(shard, frames, problems)


def frame_id_bucket(frame_id: str) -> int:
    return zlib.crc32(frame_id.encode("utf-8", "surrogatepass")) % DUPLICATE_BUCKETS


class FrameIdBatch(NamedTuple):
    """The frame ids (with lines) of one chunk that fall in one bucket, packed into a few bytes objects.

    The local runner holds every batch in its own process until the grouping step. As lists of
    (id, shard, line) tuples they raised its peak by 170 MiB at 200,000 frames; packed, by 126 MiB,
    most of which was heap fragmentation from malloc settings now kept for decoding jobs
    (bench/memory_bench.py, docs/PERFORMANCE.md).
    """

    shard: str
    ids: bytes  # the UTF-8 ids back to back
    id_lengths: bytes  # array('I') of their byte lengths
    lines: bytes  # array('q') of their lines

    @classmethod
    def pack(cls, shard: str, entries: list[tuple[str, int]]) -> "FrameIdBatch":
        encoded = [frame_id.encode("utf-8", "surrogatepass") for frame_id, _ in entries]
        return cls(shard, b"".join(encoded), array("I", map(len, encoded)).tobytes(),
                   array("q", [line for _, line in entries]).tobytes())

    def entries(self) -> Iterator[tuple[str, str, int]]:
        """(frame_id, shard, line) of every frame in the batch."""
        lengths, lines = array("I"), array("q")
        lengths.frombytes(self.id_lengths)
        lines.frombytes(self.lines)
        start = 0
        for length, line in zip(lengths, lines):
            yield self.ids[start:start + length].decode("utf-8", "surrogatepass"), self.shard, line
            start += length


@dataclass(frozen=True)
class JoinOptions:
    mask_labels: MaskLabels | None = None
    decode: bool = False
    max_masks_per_frame: int = 256
    slice_by: tuple[str, ...] = ()


def join_chunk(chunk: ValidatedChunk, options: JoinOptions) -> list[Any]:
    """Join and flatten a validated chunk.

    Returns ``TableRows`` (main output; issues as rows, the other tables as Arrow tables), ``(bucket, FrameIdBatch)``
    tagged FRAME_IDS for the dataset-wide duplicate check, and with decoding on, each mask to
    decode tagged MASK_REQUESTS plus the frames rows of frames with masks tagged PENDING_FRAMES (their
    validity waits for decoding).
    """
    out: list[Any] = []
    tables: dict[str, list] = defaultdict(list)
    tables["issues"].extend(chunk.problems)
    ids: dict[int, list] = defaultdict(list)
    joined_frames, settled = [], []
    planned = 0
    for frame in chunk.frames:
        joined = join_frame(frame, options.mask_labels)
        joined_frames.append(joined)
        has_masks = any(s.masks for s in frame.doc.sources)
        decode_here = options.decode and has_masks
        if decode_here:
            over_limit = too_many_masks(frame, options.max_masks_per_frame)
            if over_limit is not None:
                frame.findings.append(over_limit)
        tables["issues"].extend(frame_issue_rows(joined))
        if not decode_here:
            settled.append(joined)
        if frame.own_id:
            ids[frame_id_bucket(frame.id)].append((frame.id, frame.line))
        if decode_here:
            out.append(beam.pvalue.TaggedOutput(PENDING_FRAMES, ((frame.shard, frame.line), frame_row(joined))))
            if options.slice_by:
                from transforms.slices import frame_slice_values
                from transforms.validation import meta_texts

                values = frame_slice_values(frame.doc.context_id, meta_texts([frame.doc.meta])[0], options.slice_by)
                out.append(beam.pvalue.TaggedOutput(FRAME_SLICES, ((frame.shard, frame.line), values)))
            requests, undecoded = plan_masks(joined, options.max_masks_per_frame)
            tables["masks"].extend(undecoded)
            out.extend(beam.pvalue.TaggedOutput(MASK_REQUESTS, req) for req in requests)
            planned += len(requests)
    if planned:
        progress.note(planned=planned)  # the masks to decode: the total the progress line counts down
    for table, rows in tables.items():
        if rows:
            out.append(TableRows(table, rows))
    if chunk.frames:
        out.extend(TableRows(table, data) for table, data in chunk_tables(joined_frames, settled).items() if len(data))
    for bucket, entries in ids.items():
        out.append(beam.pvalue.TaggedOutput(FRAME_IDS, (bucket, FrameIdBatch.pack(chunk.shard, entries))))
    return out


def duplicate_id_rows(entries: Iterable[tuple[str, str, int]]) -> list[IssueRow]:
    """issues rows (one per occurrence) for frame ids found in more than one place."""
    where: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for frame_id, shard, line in entries:
        where[frame_id].append((shard, line))
    rows = []
    for frame_id, places in where.items():
        if len(places) < 2:
            continue
        places.sort()
        for shard, line in places:
            others = [f"{s}:{n}" for s, n in places if (s, n) != (shard, line)]
            rows.append(finding_row(shard, line, frame_id, Finding(
                "duplicate_frame_id", "/id",
                f"Frame id {frame_id!r} also occurs at {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}; "
                "frame ids should be unique in a dataset (join tables on shard and line meanwhile).",
            )))
    return rows


# --- Beam wrappers ---------------------------------------------------------------------------------------

@dataclass
class ReadFrames(beam.PTransform):
    """Globs -> chunks of raw records, spread over workers.

    Globs are expanded on the workers (not while building the graph). Shards, and parts of large
    shards, are spread over workers; the records themselves are never shuffled: reading, parsing,
    validation, joining and writing run fused on the worker that reads them, so memory stays bounded
    and no record is copied between processes.
    """

    inputs: Sequence[Target | str]  # globs, with the storage options that reach them and the shards they match
    limits: ReadLimits = ReadLimits()
    spread: int = SPREAD_BUCKETS  # ways the shard parts are split (see transforms.portable.Spread)

    def __post_init__(self):
        super().__init__()
        self.inputs = [Target.of(i) for i in self.inputs]
        if any(i.storage_options != self.inputs[0].storage_options for i in self.inputs):
            raise ValueError("ReadFrames reads every glob with the same storage options")

    def expand(self, pbegin):
        limits = self.limits
        # Shard URIs travel as strings (Distinct keys them); each is reached with the globs' storage options.
        reach = self.inputs[0] if self.inputs else Target("")
        return (
            pbegin
            | "Patterns" >> beam.Create([i.url for i in self.inputs])
            | "ExpandGlobs" >> beam.FlatMap(lambda pattern: expand_input(reach.at(pattern)))
            | "DistinctShards" >> beam.Distinct()
            | "SpreadShards" >> beam.Reshuffle()
            | "PlanParts" >> beam.FlatMap(lambda shard: plan_shard(reach.at(shard), limits)).with_output_types(ShardPart)
            | "SpreadParts" >> Spread(_part_bucket, ShardPart, self.spread)
            | "ReadParts" >> beam.FlatMap(lambda part: chunk_records(redact_uri(part.uri), iter_shard(reach.at(part.uri), limits, part), limits))
            .with_output_types(RecordChunk)
        )


def _part_bucket(part: ShardPart) -> int:
    return zlib.crc32(f"{part.uri}\x00{part.start}".encode("utf-8", "surrogatepass"))


class SetUpWorker(beam.DoFn):
    """A DoFn whose ``setup`` gives its worker process the run's WorkerSetup (GC, malloc, progress folder)."""

    def __init__(self, worker: WorkerSetup):
        self.worker = worker

    def setup(self):
        self.worker.apply()


class Validate(beam.PTransform):
    """Chunks of raw records -> ValidatedChunk (parsed, checked, normalised frames + unparsable records)."""

    def __init__(self, max_json_depth: int = DEFAULT_MAX_JSON_DEPTH, worker: WorkerSetup = WorkerSetup()):
        super().__init__()
        self.max_json_depth = max_json_depth
        self.worker = worker

    def expand(self, chunks):
        return chunks | "ParseAndCheck" >> beam.ParDo(ValidateFn(self.worker, self.max_json_depth)).with_output_types(ValidatedChunk)


class ValidateFn(SetUpWorker):
    def __init__(self, worker: WorkerSetup, max_json_depth: int = DEFAULT_MAX_JSON_DEPTH):
        super().__init__(worker)
        self.max_json_depth = max_json_depth

    def process(self, chunk: RecordChunk):
        validated = validate_chunk(chunk, self.max_json_depth)
        progress.note(records=len(chunk.records), bytes=sum(len(r.data) for r in chunk.records), frames=len(validated.frames))
        yield validated


class JoinFn(SetUpWorker):
    def __init__(self, worker: WorkerSetup, options: JoinOptions):
        super().__init__(worker)
        self.options = options

    def process(self, chunk: ValidatedChunk):
        yield from tag_outputs(join_chunk(chunk, self.options))


for _chunk_type in (RecordChunk, ValidatedChunk, TableRows):
    beam.coders.registry.register_coder(_chunk_type, ChunkCoder)


class Joined(NamedTuple):
    """What JoinMasks produces."""

    rows: beam.PCollection            # TableRows of frames, sources, masks, rois, issues
    duplicates: beam.PCollection      # TableRows of issues: the dataset-wide duplicate frame id check
    mask_requests: beam.PCollection   # MaskRequest of each mask to decode (decoding jobs only)
    pending_frames: beam.PCollection  # ((shard, line), frames row) of frames whose masks are decoded
    frame_slices: beam.PCollection    # ((shard, line), the frame's --slice-by values) of those frames (with --slice-by)


@dataclass
class JoinMasks(beam.PTransform):
    """ValidatedChunk -> table rows; with decoding on, mask requests and the frames rows that wait for them.

    Also runs the dataset-wide duplicate frame id check, whose findings join the table rows.
    """

    options: JoinOptions = field(default_factory=JoinOptions)
    worker: WorkerSetup = WorkerSetup()

    def __post_init__(self):
        super().__init__()

    def expand(self, validated) -> Joined:
        # One output, branches selected by tag: runners need not split multi-output ParDos (Dask does not).
        out = validated | "JoinAndFlatten" >> beam.ParDo(JoinFn(self.worker, self.options)).with_output_types(Tagged)
        duplicates = (
            out
            | "JoinedFrameIds" >> only(FRAME_IDS, typehints.Tuple[int, FrameIdBatch])
            | "GroupIdsByBucket" >> beam.GroupByKey()
            | "FindDuplicateIds" >> beam.FlatMap(lambda kv: _as_rows("issues", duplicate_id_rows(e for batch in kv[1] for e in batch.entries())))
            .with_output_types(TableRows)
        )
        return Joined(
            rows=out | "JoinedRows" >> only(MAIN, TableRows),
            duplicates=duplicates,
            mask_requests=out | "JoinedMaskRequests" >> only(MASK_REQUESTS, MaskRequest),
            pending_frames=out | "JoinedPendingFrames" >> only(PENDING_FRAMES, typehints.Tuple[typehints.Tuple[str, int], tuple]),
            frame_slices=out | "JoinedFrameSlices" >> only(FRAME_SLICES, typehints.Tuple[typehints.Tuple[str, int], typehints.Any]),
        )


def _as_rows(table: str, rows: list) -> list[TableRows]:
    return [TableRows(table, rows)] if rows else []


class WriteParquetFn(SetUpWorker):
    """Buffers each bundle's rows per table and writes them as Parquet files into staging."""

    def __init__(self, directory: Target, max_rows: int = 150_000, max_bytes: int = 32 * 1024 * 1024,
                 worker: WorkerSetup = WorkerSetup()):
        super().__init__(worker)
        self.directory = directory  # pickled as URL and options; its filesystem is made on the worker
        self.max_rows = max_rows
        self.max_bytes = max_bytes  # flushed by bytes too: crop rows of big masks are large
        self.rows_out = beam.metrics.Metrics.counter(self.__class__, "rows-written")

    def start_bundle(self):
        self.buffer = writing.TableBuffer(self.max_rows, getattr(self, "max_bytes", 32 * 1024 * 1024))

    def process(self, item: TableRows):
        if item.table == "issues":
            progress.note(findings=len(item.rows))
        full = self.buffer.add(item)
        if full is not None:
            yield self._flush(full)

    def finish_bundle(self):
        for table in self.buffer.tables():
            yield WindowedValue(self._flush(table), GlobalWindow().max_timestamp(), [GlobalWindow()])
        progress.flush()

    def _flush(self, table: str) -> writing.WrittenFile:
        rows = self.buffer.take(table)
        self.rows_out.inc(len(rows))
        return writing.write_rows(table, rows, self.directory)


class WriteGroupFn(WriteParquetFn):
    """Writes one group of rows ((table, bucket), [TableRows]) completely within ``process``, and
    reports the files and the group's finding counts as ``Tagged`` ("files" / "counts").

    For runners that drop what ``finish_bundle`` emits (Beam 2.77's DaskRunner): publish takes only
    reported files (a retried task's orphans are deleted).
    """

    def process(self, group: tuple[tuple[str, int], Iterable[TableRows]]):
        items = list(group[1])
        for item in items:
            for written in super().process(item):
                yield Tagged("files", written)
        for table in self.buffer.tables():
            yield Tagged("files", self._flush(table))
        yield Tagged("counts", writing.finding_counts(items))


class KeyForWriting(beam.DoFn):
    """(table, n % WRITE_BUCKETS) for the n-th item of the bundle: a bundle's rows spread over a few files per table."""

    def start_bundle(self):
        self.n = 0

    def process(self, item: TableRows):
        self.n += 1
        yield (item.table, self.n % WRITE_BUCKETS), item


class TableBranches(NamedTuple):
    """What WriteTables writes: JoinMasks' rows and, when masks were decoded, DecodeMasks' and CompareLabels'."""

    joined: Joined
    decoded: Any = None  # masks.Decoded
    summary_extras: beam.PCollection | None = None  # (key, value) pairs merged into summary.json
    drift_rows: beam.PCollection | None = None  # TableRows of drift findings (with --baseline)
    history: beam.PCollection | None = None  # one element: this run's history rows (transforms.history.compare_run)


@dataclass
class WriteTables(beam.PTransform):
    """TableBranches -> Parquet files under OUTPUT/<table>/, summary.json and _SUCCESS, published at the end."""

    output: Target
    run_id: str
    tables: Sequence[str]
    run_info: writing.RunInfo
    keep_history: int = 30
    # False for runners that drop finish_bundle's outputs (see WriteGroupFn): rows are grouped before writing.
    bundle_outputs: bool = True
    worker: WorkerSetup = WorkerSetup()

    def __post_init__(self):
        super().__init__()
        self.output = Target.of(self.output)

    def _extract_input_pvalues(self, pvalueish):
        # Beam's hook for multi-input transforms: the branches a job does not have are None.
        pvalueish, inputs = super()._extract_input_pvalues(pvalueish)
        return pvalueish, {tag: value for tag, value in inputs.items() if value is not None}

    def expand(self, branches: TableBranches):
        joined, decoded = branches.joined, branches.decoded
        # Each branch of rows is written where it is produced: flattening branches from different
        # stages first would make the runner buffer (pickle) every row between them.
        # Labels are literals: Dataflow's --update matches steps by them.
        to_write = [
            (decoded and decoded.decoded_frames, "WriteDecodedFrames", "CountDecodedFrames"),
            (branches.drift_rows, "WriteDriftRows", "CountDriftRows"),
            (joined.duplicates, "WriteDuplicateRows", "CountDuplicateRows"),
            (joined.rows, "WriteFrameRows", "CountFrameRows"),
            (decoded and decoded.label_summary, "WriteLabelSummary", "CountLabelSummary"),
            (decoded and decoded.measured, "WriteMeasured", "CountMeasured"),
            (decoded and decoded.slice_summary, "WriteSliceSummary", "CountSliceSummary"),
        ]
        staging = writing.staging_dir(self.output, self.run_id)
        to_write = [(rows, write_label, count_label) for rows, write_label, count_label in to_write if rows is not None]
        extras = branches.summary_extras
        if extras is None:
            extras = joined.rows.pipeline | "NoSummaryExtras" >> beam.Create([]).with_output_types(typehints.Tuple[str, Any])
        history = branches.history
        if history is None:
            history = joined.rows.pipeline | "NoHistoryRows" >> beam.Create([])
        if self.bundle_outputs:
            written, counted = [], []
            for rows, write_label, count_label in to_write:
                written.append(rows | write_label >> beam.ParDo(WriteParquetFn(staging, worker=self.worker))
                               .with_output_types(writing.WrittenFile))
                counted.append(rows | count_label >> beam.Map(lambda item: writing.finding_counts([item])).with_output_types(dict))
            files = tuple(written) | "AllFiles" >> beam.Flatten()
            # Without defaults: CombineGlobally's default for an empty input is a side input; Gather copes with none.
            counts = tuple(counted) | "AllCounts" >> beam.Flatten() | "SumCounts" >> beam.CombineGlobally(_sum_counters).without_defaults()
            gathered = {"files": files, "counts": counts, "extras": extras, "history": history} | "GatherForPublish" >> Gather()
        else:
            # Rows are grouped for writing anyway, so all branches go through one grouping (on Dask
            # every GroupByKey is a shuffle over the sum of its inputs' partitions).
            written = (
                tuple(rows for rows, _, _ in to_write)
                | "AllRows" >> beam.Flatten()
                | "KeyForWriting" >> beam.ParDo(KeyForWriting()).with_output_types(typehints.Tuple[typehints.Tuple[str, int], TableRows])
                | "GroupForWriting" >> beam.GroupByKey()
                | "WriteGroups" >> beam.ParDo(WriteGroupFn(staging, worker=self.worker)).with_output_types(Tagged)
            )
            gathered = (
                {"written": written, "extras": extras, "history": history}
                | "GatherForPublish" >> Gather()
                | "SplitWritten" >> beam.Map(_split_written).with_output_types(dict[str, list])
            )
        output, run_id, tables, info, keep = self.output, self.run_id, self.tables, self.run_info, self.keep_history
        return gathered | "Publish" >> beam.Map(
            lambda g: _publish(output, run_id, g["files"], tables, info, _sum_counters(g["counts"]), dict(g["extras"]),
                               g["history"], keep))


def _split_written(g: dict[str, list]) -> dict[str, list]:
    return {"files": [t.value for t in g["written"] if t.tag == "files"],
            "counts": [t.value for t in g["written"] if t.tag == "counts"], "extras": g["extras"], "history": g["history"]}


def _publish(output: Target, run_id: str, written: list, tables: Sequence[str], info: writing.RunInfo, counts, extras: dict,
             history: list, keep_history: int) -> dict:
    """The summary, this run's history tables (carried forward from the previous run), then the atomic publish."""
    from transforms.history import write_history

    summary = writing.build_summary(info, counts, extras)
    summary["published_at"] = writing.now_iso()
    written = list(written) + write_history(output, run_id, summary, history[0] if history else None, keep_history)
    return writing.publish(output, run_id, written, tables, summary, _write_report(output))


def _write_report(output: Target):
    """The report is written into the run folder before _SUCCESS: a complete output always has one."""
    def write(run_folder: Target, summary: dict) -> None:
        # Imported where used: the report brings the mask decoders, which a convert worker never needs before publish.
        from transforms.report import write_report

        write_report(run_folder, drift=summary.get("drift"), title_output=output.url)
    return write


def _sum_counters(counters):
    total = Counter()
    for c in counters:
        total.update(c)
    return total
