"""The ``framebeam`` command: convert, validate, run, sample.

    framebeam convert  --input 'data/*.jsonl.gz' --output out/        frames -> Parquet tables
    framebeam validate --input ... --output ... [--max-errors N]       same tables + summary; exit 0 / 1 / 2
    framebeam run      --input ... --output ...                        convert + mask statistics and crops
    framebeam sample   DIR                                             write a small sample dataset
    framebeam tables   OUTPUT                                          where each table of the last complete run is

Exit status: 0 done (validate: passed), 1 validate found more errors than allowed, 2 misuse or
infrastructure failure (bad flag, no input matched, storage unreachable).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILED_CHECKS, EXIT_MISUSE = 0, 1, 2
# glibc otherwise unmaps each decoded mask's big buffers and page-faults them back in for the next
# mask (~2x its decode time, bench/run_bench.py). Local worker processes inherit the environment.
# Only jobs that decode masks get them: without big buffers to keep they only fragment the heap (a
# 200,000-frame convert peaked ~200 MiB higher with them, bench/memory_bench.py).
MALLOC_THRESHOLDS = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "2147483648"}


def build_parser() -> argparse.ArgumentParser:
    from pipelines.options import COMMANDS, _json_object, add_job_arguments

    parser = argparse.ArgumentParser(
        prog="framebeam",
        description="ClearML Hyper-Datasets frames and masks -> validated Parquet tables, on Apache Beam.",
        epilog="Flags not listed here go to Apache Beam (e.g. --runner DataflowRunner --project P --region R).",
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {
        "convert": "Parse, validate and join frames; write frames/sources/masks/rois/issues tables.",
        "validate": "As run (or convert with --no-decode), then print a summary; exit 1 when the run fails its thresholds.",
        "run": "Everything convert does plus mask decoding: label_stats, crops, label_summary.",
    }
    for command in COMMANDS:
        add_job_arguments(sub.add_parser(command, help=helps[command], allow_abbrev=False), command)
    sample = sub.add_parser("sample", help="Write the bundled sample dataset into DIR.", allow_abbrev=False)
    sample.add_argument("directory", metavar="DIR")
    tables = sub.add_parser("tables", help="Print where each table of OUTPUT's current complete run is (a glob per table).",
                            allow_abbrev=False)
    tables.add_argument("output", metavar="OUTPUT")
    tables.add_argument("--storage-options", type=_json_object, default={}, metavar="JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, beam_flags = parser.parse_known_args(argv)
    if args.command in ("sample", "tables") and beam_flags:
        parser.error(f"unrecognized arguments: {' '.join(beam_flags)}")
    if args.command == "sample":
        return _sample(args.directory)
    if args.command == "tables":
        return _tables(args.output, args.storage_options)
    return _run_job(parser, args, beam_flags)


def _sample(directory: str) -> int:
    from transforms.sample import write_sample

    manifest = write_sample(directory)
    print(f"Wrote the sample dataset to {directory}: {manifest.get('frames', '?')} frames in {manifest.get('shards', '?')} shards.")
    print(f"Try: framebeam run --input '{directory}/frames-*' --mask-labels {directory}/mask_labels.json --output {directory}-out")
    return EXIT_OK


def _tables(output: str, storage_options: dict) -> int:
    from transforms.uris import redact_uri
    from transforms.writing import table_globs

    try:
        globs = table_globs(output, storage_options)
    except (OSError, KeyError, ValueError) as e:
        print(f"framebeam: {redact_uri(output)} holds no complete run ({type(e).__name__}: {redact_uri(str(e))})", file=sys.stderr)
        return EXIT_MISUSE
    for table, glob in globs.items():
        print(f"{table}\t{glob}")
    return EXIT_OK


def _run_job(parser: argparse.ArgumentParser, args: argparse.Namespace, beam_flags: list[str]) -> int:
    from pipelines.options import RunnerUnavailable, job_options_from_args, unknown_beam_flags

    try:
        unknown = unknown_beam_flags(beam_flags)
    except RunnerUnavailable as e:
        parser.error(str(e))
    if unknown:
        parser.error(f"unrecognized arguments (neither framebeam's nor Apache Beam's): {' '.join(unknown)}")
    job = job_options_from_args(args.command, args)
    if job.decode:
        for name, value in MALLOC_THRESHOLDS.items():
            os.environ.setdefault(name, value)  # a value the user set wins
    from transforms.uris import install_log_redaction

    install_log_redaction()  # every log line goes through the one redaction function
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The local job service relays every worker's start-up chatter as warnings; real failures still raise.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)

    from pipelines.runner import InputError, run_job

    from transforms.uris import redact_uri

    try:
        summary = run_job(job, beam_flags, show_progress=not job.quiet)
    except InputError as e:
        print(f"framebeam: {redact_uri(str(e))}", file=sys.stderr)
        return EXIT_MISUSE
    except Exception as e:  # noqa: BLE001 - storage down, runner failure: a scheduler must see 2, not 1
        logging.getLogger("framebeam").debug("run failed", exc_info=True)
        print(f"framebeam: the run failed ({type(e).__name__}: {redact_uri(str(e))[:2000]}); nothing was published.", file=sys.stderr)
        return EXIT_MISUSE
    if not job.quiet:
        from pipelines.runner import print_summary

        print_summary(summary, job)
    if job.command != "validate":
        return EXIT_OK
    return EXIT_OK if summary["passed"] else EXIT_FAILED_CHECKS


if __name__ == "__main__":
    sys.exit(main())
