"""Options: what to compute (``JobOptions``, the domain) apart from how to run it (Beam's runner flags).

Every flag framebeam owns is declared here, once, in ``add_job_arguments``; flags it does not own go
to Beam's ``PipelineOptions`` unchanged, so ``--runner DataflowRunner --project ...`` just work.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: the CLI checks its flags and OUTPUT before Beam loads (~1-2 s)
    from apache_beam.options.pipeline_options import PipelineOptions
    from transforms.storage import Target

LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
# The plain DirectRunner first downloads a binary (Prism) and stalls offline; FnApiRunner does not.
LOCAL_DEFAULTS = [f"--runner={LOCAL_RUNNER}"]
ALL_CORES = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
IN_PROCESS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
# Starting Beam's worker processes costs ~2.5 s (a 1-frame convert: 4.6 s with them, 2.2 s without), so
# small jobs finish sooner in one process: measured, 24 MB of frames converted in 3.3 s in-process and
# 5.4 s on all cores (break-even near 100 MB). Decoding jobs break even far sooner, since masks use the
# other cores: 128 KB is below the break-evens bench/in_process_bench.py measures (docs/PERFORMANCE.md).
IN_PROCESS_MAX_BYTES = 32 * 1024 * 1024
IN_PROCESS_MAX_BYTES_DECODING = 128 * 1024

COMMANDS = ("convert", "validate", "run")

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
# Beam resolves short runner names only for the runners it lists; the DaskRunner is not among them.
RUNNER_ALIASES = {"daskrunner": DASK_RUNNER, "dask": DASK_RUNNER}
DASK_PARTITIONS = 4  # default --dask_npartitions: ~2x the worker threads of a small cluster


@dataclass(frozen=True)
class JobOptions:
    """What a framebeam job computes. Plain data: picklable, printable, testable without Beam."""

    command: str
    inputs: tuple[str, ...]
    output: str
    mask_labels: str | None = None
    decode: bool = False
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)  # may hold secrets: use .target / .at(url)
    max_record_bytes: int = 16 * 1024 * 1024
    max_mask_pixels: int = 100_000_000
    max_json_depth: int = 64
    max_masks_per_frame: int = 256
    mask_decode_timeout: float = 60.0
    max_mask_bytes: int = 256 * 1024 * 1024
    colour_tolerance: int = 0
    crop_png: bool = False
    allow_http: bool = False
    allow_uri_prefixes: tuple[str, ...] = ()
    min_label_frames: int = 5
    shape_stats: bool = True
    min_component_pixels: int = 4
    max_outside_roi: float = 0.005
    max_errors: int = 0
    fail_on: str = "error"
    max_error_rate: float | None = None
    baseline: str | None = None  # "previous" or an earlier run's output folder
    max_drift: tuple[tuple[str, float], ...] = ()  # (metric, threshold) pairs: linf, js, psi, label_js, shape_js
    keep_history: int = 30
    slice_by: tuple[str, ...] = ()
    quiet: bool = False

    @property
    def target(self) -> "Target":
        """OUTPUT with the storage options (transforms.storage.Target)."""
        return self.at(self.output)

    def at(self, url: str) -> "Target":
        """Any URL of the job (an input glob, --mask-labels, --baseline) with the job's storage options."""
        from transforms.storage import Target

        return Target(url, self.storage_options)

    def parameters(self) -> dict[str, Any]:
        """For summary.json: the run's parameters, storage options left out (they may hold secrets)."""
        d = asdict(self)
        d.pop("storage_options")
        d["inputs"] = list(self.inputs)
        d["allow_uri_prefixes"] = list(self.allow_uri_prefixes)
        d["max_drift"] = self.drift_thresholds()
        d["slice_by"] = list(self.slice_by)
        from transforms.uris import redact_value

        return redact_value(d)  # URLs given as flags (--mask-labels, --baseline, ...) may carry user-info

    def drift_thresholds(self) -> dict[str, float]:
        """--max-drift as {metric: threshold}; a metric given twice keeps the last value."""
        return dict(self.max_drift)


def add_job_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--input", dest="inputs", nargs="+", action="extend", required=True, metavar="GLOB",
                        help="Frame shards: local paths, file://, gs:// or s3:// globs of .jsonl/.ndjson/.json files, optionally .gz/.bz2/.zst.")
    parser.add_argument("--output", required=True, metavar="DIR", help="Folder (local, gs://, s3://) for the tables.")
    parser.add_argument("--mask-labels", metavar="FILE",
                        help="The dataset's class table, for frames whose ROIs carry no mask: ClearML's {\"_all_\": [{\"value\": [r,g,b], "
                             "\"labels\": [...]}]}, a {\"Name\": [r,g,b] or \"#rrggbb\"} map, or CamVid's label_colors.txt (r g b Name per line). "
                             "Its classes may be absent from a mask (no warning); see docs/CLASS_TABLES.md.")
    parser.add_argument("--storage-options", type=_json_object, default={}, metavar="JSON",
                        help="fsspec storage options as JSON, e.g. '{\"anon\": true}' (credentials come from the standard chains).")
    parser.add_argument("--max-record-bytes", type=_positive_int, default=16 * 1024 * 1024, metavar="N",
                        help="Longest record read (default 16 MiB); longer records become record_too_large findings.")
    parser.add_argument("--max-json-depth", type=_json_depth, default=64, metavar="N",
                        help="Deepest nesting of a record (default 64; the record is level 1); deeper records become json_too_deep findings.")
    parser.add_argument("--quiet", action="store_true", help="No summary table on the terminal.")
    parser.add_argument("--wait-for-lock", type=_non_negative_float, default=0.0, metavar="SECONDS",
                        help="When another run is writing to OUTPUT, wait up to SECONDS for it to finish (default 0: refuse at once).")
    parser.add_argument("--debug", action="store_true",
                        help="Print full tracebacks and Beam's log to stderr (they always go to the run's log file).")
    parser.add_argument("--keep-history", type=_positive_int, default=30, metavar="N",
                        help="Keep the last N runs (this one included) in OUTPUT's history and history_runs tables (default 30).")
    if command in ("run", "validate"):
        parser.add_argument("--max-mask-pixels", type=_positive_int, default=100_000_000, metavar="N",
                            help="Refuse masks with more pixels, before decoding (default 100 megapixels).")
        parser.add_argument("--max-masks-per-frame", type=_positive_int, default=256, metavar="N",
                            help="Decode at most N masks per frame (default 256); a frame with more gets a too_many_masks error.")
        parser.add_argument("--mask-decode-timeout", type=_positive_float, default=60.0, metavar="SECONDS",
                            help="Time limit per mask for reading, decoding and statistics (default 60); over it: mask_decode_timeout.")
        parser.add_argument("--max-mask-bytes", type=_positive_int, default=256 * 1024 * 1024, metavar="N",
                            help="Read at most N bytes of a mask file (default 256 MiB = 268435456); larger: mask_file_too_large.")
        parser.add_argument("--colour-tolerance", type=_byte, default=0, metavar="N",
                            help="Assign a pixel to the nearest declared colour within N per channel (default 0: exact; for lossy masks).")
        parser.add_argument("--crop-png", action="store_true", help="Also store each crop as 1-bit PNG bytes in crops.png.")
        parser.add_argument("--allow-http", action="store_true", help="Allow http(s):// mask URIs.")
        parser.add_argument("--allow-uri-prefix", dest="allow_uri_prefixes", action="append", default=[], metavar="PREFIX",
                            help="Only read mask URIs under this prefix (repeatable).")
        parser.add_argument("--min-label-frames", type=_positive_int, default=5, metavar="N",
                            help="Warn about labels seen in fewer frames (default 5).")
        parser.add_argument("--no-shape-stats", dest="shape_stats", action="store_false",
                            help="Skip the shape columns of label_stats (components, holes, component sizes) and mask_speckle; "
                                 "pixels_outside_roi is still measured.")
        parser.add_argument("--min-component-pixels", type=_positive_int, default=4, metavar="N",
                            help="A component (8-connected) smaller than N pixels is a speck: an info finding mask_speckle (default 4).")
        parser.add_argument("--max-outside-roi", type=_fraction, default=0.005, metavar="FRACTION",
                            help="Warn (mask_outside_roi) when more than this fraction of a colour's pixels lie outside its ROI's poly (default 0.005).")
        parser.add_argument("--baseline", metavar="previous|DIR",
                            help="Compare labels with `previous` (the previous complete run into the same --output, from its "
                                 "history) or an earlier run's output folder: drift values in summary.json, labels that "
                                 "appeared, vanished or changed colour.")
        parser.add_argument("--max-drift", dest="max_drift", type=_drift_threshold, action="append", default=[],
                            metavar="[METRIC=]VALUE",
                            help="With --baseline: an error finding (fails validate) when a drift value exceeds VALUE. METRIC is "
                                 "linf (the default: L-infinity distance of the label distributions, 0..1), js (their "
                                 "Jensen-Shannon divergence in bits, 0..1), psi (population stability index, >= 0), label_js "
                                 "(the largest JS divergence of one label's pixel-fraction histograms, 0..1) or shape_js (the "
                                 "largest JS divergence of one label's histograms of components, holes or largest-component share per mask, 0..1). Repeatable.")
        parser.add_argument("--slice-by", dest="slice_by", type=_slice_key, action="append", default=[], metavar="KEY",
                            help="Also summarise labels per slice: source_id, context_id or meta.<path> (the frame's meta); "
                                 "writes label_summary_by_slice and per-slice drift. Repeatable.")
    if command == "validate":
        parser.add_argument("--max-errors", type=_non_negative_int, default=0, metavar="N",
                            help="Pass with up to N failing findings (default 0).")
        parser.add_argument("--fail-on", choices=("error", "warning"), default="error",
                            help="Which findings fail validation: errors only (default), or warnings too.")
        parser.add_argument("--max-error-rate", type=_fraction, metavar="FRACTION",
                            help="Fail when more than this fraction of records is invalid (a frame with an error, or a record that is no frame).")
        parser.add_argument("--no-decode", action="store_true", help="Skip decoding masks (structure and joins only).")


def job_options_from_args(command: str, args: argparse.Namespace) -> JobOptions:
    decode = command == "run" or (command == "validate" and not args.no_decode)
    return JobOptions(
        command=command,
        inputs=tuple(args.inputs),
        output=args.output,
        mask_labels=args.mask_labels,
        decode=decode,
        storage_options=args.storage_options,
        max_record_bytes=args.max_record_bytes,
        max_mask_pixels=getattr(args, "max_mask_pixels", 100_000_000),
        max_json_depth=args.max_json_depth,
        max_masks_per_frame=getattr(args, "max_masks_per_frame", 256),
        mask_decode_timeout=getattr(args, "mask_decode_timeout", 60.0),
        max_mask_bytes=getattr(args, "max_mask_bytes", 256 * 1024 * 1024),
        colour_tolerance=getattr(args, "colour_tolerance", 0),
        crop_png=getattr(args, "crop_png", False),
        allow_http=getattr(args, "allow_http", False),
        allow_uri_prefixes=tuple(getattr(args, "allow_uri_prefixes", ())),
        min_label_frames=getattr(args, "min_label_frames", 5),
        shape_stats=getattr(args, "shape_stats", True),
        min_component_pixels=getattr(args, "min_component_pixels", 4),
        max_outside_roi=getattr(args, "max_outside_roi", 0.005),
        max_errors=getattr(args, "max_errors", 0),
        fail_on=getattr(args, "fail_on", "error"),
        max_error_rate=getattr(args, "max_error_rate", None),
        baseline=getattr(args, "baseline", None),
        max_drift=tuple(getattr(args, "max_drift", None) or ()),
        keep_history=args.keep_history,
        slice_by=tuple(dict.fromkeys(getattr(args, "slice_by", None) or ())),
        quiet=args.quiet,
    )


def beam_options(flags: list[str], input_bytes: int | None = None, decode: bool = False) -> PipelineOptions:
    """Beam's options from the flags framebeam does not own; the local runner unless one is named.

    The local runner uses all cores, or one process when the input (``input_bytes``, compressed shards
    counted at their estimated expanded size) is small enough to finish before worker processes would
    have started. A running mode or worker count given on the command line always wins.
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = _full_runner_names(flags)
    register_runner_options(flags)
    if not any(_names(f, "--runner") for f in flags):
        chosen = any(_names(f, "--direct_running_mode") or _names(f, "--direct_num_workers") for f in flags)
        limit = IN_PROCESS_MAX_BYTES_DECODING if decode else IN_PROCESS_MAX_BYTES
        small = not chosen and input_bytes is not None and input_bytes <= limit
        flags = LOCAL_DEFAULTS + (IN_PROCESS if small else ALL_CORES) + flags  # given flags come last and win
    elif uses_dask(flags) and not any(_names(f, "--dask_npartitions") or _names(f, "--dask_partition_size") for f in flags):
        # The DaskRunner's Create puts up to 128 elements in one partition, and a partition is one task:
        # without this the whole job would run as one task on one worker (see spread_buckets).
        flags = [*flags, f"--dask_npartitions={DASK_PARTITIONS}"]
    return PipelineOptions(flags)


def spread_buckets(options: PipelineOptions) -> int:
    """How many ways transforms.portable.Spread splits the work.

    64 on other runners (buckets are free there). On Dask each bucket becomes a partition, i.e. a task
    per step, and partitions add up at every Flatten (a GroupByKey keeps its input's count): the final
    gather of a `run` has ~25x this many partitions, so it stays near the cluster's worker threads
    (--dask_npartitions)."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner or ""
    if runner != DASK_RUNNER and not runner.endswith("DaskRunner"):
        return 64
    npartitions = options.get_all_options().get("npartitions")
    return npartitions or DASK_PARTITIONS


def _names(flag: str, name: str) -> bool:
    return flag == name or flag.startswith(name + "=")


def runner_of(flags: list[str]) -> str | None:
    """The runner the flags name (the last --runner wins, as in argparse), as Beam will resolve it."""
    runner = None
    for i, flag in enumerate(flags):
        if flag == "--runner" and i + 1 < len(flags):
            runner = flags[i + 1]
        elif flag.startswith("--runner="):
            runner = flag.partition("=")[2]
    return RUNNER_ALIASES.get(runner.lower(), runner) if runner else None


def uses_dask(flags: list[str]) -> bool:
    return runner_of(flags) == DASK_RUNNER or any(f.startswith("--dask_") for f in flags)


def _full_runner_names(flags: list[str]) -> list[str]:
    out = list(flags)
    for i, flag in enumerate(out):
        if flag == "--runner" and i + 1 < len(out):
            out[i + 1] = RUNNER_ALIASES.get(out[i + 1].lower(), out[i + 1])
        elif flag.startswith("--runner="):
            value = flag.partition("=")[2]
            out[i] = "--runner=" + RUNNER_ALIASES.get(value.lower(), value)
    return out


class RunnerUnavailable(Exception):
    """The flags ask for a runner whose Python packages are not installed."""


def register_runner_options(flags: list[str]) -> None:
    """Import the runner modules the flags ask for: Beam declares the DaskRunner's --dask_* flags
    only once its module is imported (and that import needs ``dask[distributed]``)."""
    if not uses_dask(flags):
        return
    try:
        import distributed  # noqa: F401 - Beam's module imports it lazily, then fails only at run time
        import apache_beam.runners.dask.dask_runner  # noqa: F401
    except ImportError as e:
        raise RunnerUnavailable(f"the DaskRunner needs dask[distributed]: pip install 'framebeam[dask]' ({e})") from None


def beam_flag_parser() -> argparse.ArgumentParser:
    """One parser with every flag Beam's options classes declare (for checking and for suggestions)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    seen = set()
    stack = list(PipelineOptions.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        try:
            cls._add_argparse_args(parser)
        except argparse.ArgumentError:
            pass  # two classes declaring one flag: the first is enough to know it exists
    return parser


def unknown_beam_flags(flags: list[str]) -> list[str]:
    """Flags neither framebeam nor any Beam options class declares (they would be silently dropped).

    Raises RunnerUnavailable when the flags ask for a runner that is not installed."""
    register_runner_options(flags)
    _, unknown = beam_flag_parser().parse_known_args(flags)
    return [f for f in unknown if f.startswith("-")]


def beam_flag_names() -> list[str]:
    return sorted({s for a in beam_flag_parser()._actions for s in a.option_strings if s.startswith("--")})


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _positive_int(text: str) -> int:
    v = int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return v


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number")
    return v


def _non_negative_float(text: str) -> float:
    v = float(text)
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError("must be 0 or more")
    return v


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return v


def _json_depth(text: str) -> int:
    v = int(text)
    if v < 8:
        raise argparse.ArgumentTypeError("must be at least 8: a valid frame nests 5 levels before its metas")
    return v


def _fraction(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError("must be a fraction in 0..1")
    return v


def _drift_threshold(text: str) -> tuple[str, float]:
    from transforms.drift import parse_threshold

    try:
        return parse_threshold(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _slice_key(text: str) -> str:
    from transforms.slices import parse_slice_key

    try:
        return parse_slice_key(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _byte(text: str) -> int:
    v = int(text)
    if not 0 <= v <= 255:
        raise argparse.ArgumentTypeError("must be in 0..255")
    return v
