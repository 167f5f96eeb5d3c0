"""The ``framebeam`` command: convert, validate, run, sample.

    framebeam convert  --input 'data/*.jsonl.gz' --output out/        frames -> Parquet tables
    framebeam validate --input ... --output ... [--max-errors N]       same tables + summary; exit 0 / 1 / 2
    framebeam run      --input ... --output ...                        convert + mask statistics and crops
    framebeam sample   DIR                                             write a small sample dataset
    framebeam tables   OUTPUT                                          where each table of the last complete run is

Exit status: 0 done (validate: passed), 1 validate found more errors than allowed, 2 misuse or
infrastructure failure (bad flag, refused output, no input matched, storage unreachable, disk full),
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""
from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transforms.storage import Target

EXIT_OK, EXIT_FAILED_CHECKS, EXIT_MISUSE = 0, 1, 2
EXIT_STATUS_HELP = ("exit status: 0 done (validate: passed), 1 validate failed its thresholds, 2 misuse, refused OUTPUT "
                    "or infrastructure failure (storage, disk full, permission), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)")
EXAMPLES = {
    "convert": "framebeam convert --input 'data/frames-*.jsonl' --output out",
    "validate": "framebeam validate --input 'data/frames-*.jsonl' --mask-labels data/mask_labels.json --output out --max-errors 10",
    "run": "framebeam run --input 'data/frames-*.jsonl' --mask-labels data/mask_labels.json --output out",
    "sample": "framebeam sample sample-data",
    "tables": "framebeam tables out",
}


def build_parser() -> argparse.ArgumentParser:
    from pipelines.options import COMMANDS, _json_object, add_job_arguments

    parser = argparse.ArgumentParser(
        prog="framebeam",
        description="ClearML Hyper-Datasets frames and masks -> validated Parquet tables, on Apache Beam.",
        epilog=f"example:\n  {EXAMPLES['run']}\n\n{EXIT_STATUS_HELP}\n\n"
               "Flags not listed here go to Apache Beam (e.g. --runner DataflowRunner --project P --region R).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "convert": "Parse, validate and join frames; write frames/sources/masks/rois/issues tables.",
        "validate": "As run (or convert with --no-decode), then print a summary; exit 1 when the run fails its thresholds.",
        "run": "Everything convert does plus mask decoding: label_stats, crops, label_summary.",
    }

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        epilog = f"example:\n  {EXAMPLES[name]}\n\n{EXIT_STATUS_HELP}"
        if name in COMMANDS:
            epilog += "\n\nFlags not listed here go to Apache Beam (e.g. --runner DataflowRunner --project P --region R)."
        return sub.add_parser(name, help=help_text, description=help_text, epilog=epilog, allow_abbrev=False,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    for command in COMMANDS:
        add_job_arguments(add(command, helps[command]), command)
    sample = add("sample", "Write the bundled sample dataset into DIR.")
    sample.add_argument("directory", metavar="DIR")
    tables = add("tables", "Print where each table of OUTPUT's current complete run is (a glob per table).")
    tables.add_argument("output", metavar="OUTPUT")
    tables.add_argument("--storage-options", type=_json_object, default={}, metavar="JSON")
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _own_flags(sub: argparse.ArgumentParser) -> list[str]:
    return [s for a in sub._actions for s in a.option_strings if s.startswith("--")]


def suggest(word: str, candidates: Sequence[str]) -> str | None:
    """The closest candidate to a mistyped flag or command (dashes and underscores alike), or None."""
    def norm(x: str) -> str:
        return x.lstrip("-").replace("_", "-").lower()
    by_norm = {norm(c): c for c in candidates}
    if norm(word) in by_norm:
        return by_norm[norm(word)]
    close = difflib.get_close_matches(norm(word), list(by_norm), n=1, cutoff=0.6)
    return by_norm[close[0]] if close else None


def _usage_error(prog: str, message: str) -> None:
    sys.stderr.write(f"{prog}: error: {message}\nTry '{prog} --help'.\n")
    raise SystemExit(EXIT_MISUSE)


class _ArgumentProblem(Exception):
    pass


def _quiet_error(message: str):
    raise _ArgumentProblem(message)


def _check_output_early(output: "Target", inputs: list[str], mask_labels: str | None) -> int | None:
    """A local OUTPUT framebeam must not write (a file, a folder of other files, one over the local
    inputs it reads) is refused before Beam is even loaded: returns the exit status then."""
    from transforms.ownership import OutputRefused, check_output, check_overlap, folders_read
    from transforms.uris import redact_uri

    if not output.is_local:
        return None  # a bucket: listed once, in the pre-flight checks
    try:
        check_output(output)
        if inputs and all(output.at(i).is_local for i in inputs):
            from transforms.reading import expand_input

            shards = [output.at(s) for pattern in inputs for s in expand_input(output.at(pattern))[:10_000]]
            check_overlap(output.url, folders_read(shards, mask_labels))
    except OutputRefused as e:
        sys.stderr.write(f"framebeam: {redact_uri(str(e))}\n")
        return EXIT_MISUSE
    except Exception:  # noqa: BLE001 - whatever else is wrong, the pre-flight checks say it properly
        return None
    return None


def check_flags(parser: argparse.ArgumentParser, argv: list[str]) -> int | None:
    """Mistyped commands and flags, with a did-you-mean, before argparse's own errors (e.g. a missing
    --output that was only misspelt); SystemExit(2) like argparse. A local OUTPUT framebeam must not
    write is refused here too, before Beam loads: returns the exit status then."""
    from pipelines.options import COMMANDS

    subs = _subparsers(parser)
    if not argv or argv[0] in ("-h", "--help"):
        return None
    command = argv[0]
    if command not in subs:
        if command.startswith("-"):
            return  # argparse says a command is needed
        hint = suggest(command, list(subs))
        _usage_error("framebeam", f"unknown command {command!r}" + (f"; did you mean {hint!r}?" if hint else f" (choose from {', '.join(subs)})"))
    sub = subs[command]
    saved = [(a, a.required) for a in sub._actions]
    for a, _ in saved:
        a.required = False  # only to find the tokens framebeam does not own; required flags are checked next
    sub.error = _quiet_error  # type: ignore[method-assign]
    try:
        known, rest = sub.parse_known_args(argv[1:])
    except _ArgumentProblem:
        return None  # a bad value: argparse reports it in the real parse
    finally:
        del sub.error
        for a, required in saved:
            a.required = required
    # OUTPUT first: it needs no Beam (~1-5 s to load, which checking Beam's flags needs), so a wrong
    # --output is reported within a second whatever else the command line holds.
    if command in COMMANDS and getattr(known, "output", None):
        from transforms.storage import Target

        status = _check_output_early(Target(known.output, getattr(known, "storage_options", None) or {}),
                                     getattr(known, "inputs", None) or [], getattr(known, "mask_labels", None))
        if status is not None:
            return status
    flags = [t for t in rest if t.startswith("-") and t != "-"]
    if flags:
        _unknown_flags(sub, command, rest, flags)
    return None


def _unknown_flags(sub: argparse.ArgumentParser, command: str, rest: list[str], flags: list[str]) -> None:
    from pipelines.options import COMMANDS

    if command in COMMANDS:
        from pipelines.options import RunnerUnavailable, beam_flag_names, unknown_beam_flags

        try:
            unknown = unknown_beam_flags(rest)
        except RunnerUnavailable as e:
            _usage_error(f"framebeam {command}", str(e))
        candidates = _own_flags(sub) + beam_flag_names()
    else:
        unknown, candidates = flags, _own_flags(sub)
    if not unknown:
        return
    parts = []
    for flag in unknown:
        name = flag.split("=", 1)[0]
        hint = suggest(name, candidates)
        parts.append(f"{name} (did you mean {hint}?)" if hint else name)
    owner = "neither framebeam's nor Apache Beam's" if command in COMMANDS else "not a flag of this command"
    _usage_error(f"framebeam {command}", f"unknown flag{'s' if len(parts) > 1 else ''} {', '.join(parts)}: {owner}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from pipelines.options import COMMANDS

    if argv and argv[0] in COMMANDS:
        from pipelines.lifecycle import Interrupts

        # First of all, before anything can start a thread: Ctrl-C blocked here is blocked in every
        # thread and worker process started later (see pipelines.lifecycle).
        run: dict = {}
        with Interrupts(lambda signum: _on_signal(signum, run.get("active"))):
            return _main(argv, run)
    return _main(argv, {})


def _main(argv: list[str], run: dict) -> int:
    parser = build_parser()
    status = check_flags(parser, argv)
    if status is not None:
        return status
    args, beam_flags = parser.parse_known_args(argv)
    if args.command in ("sample", "tables") and beam_flags:
        parser.error(f"unrecognized arguments: {' '.join(beam_flags)}")
    if args.command == "sample":
        return _sample(args.directory)
    if args.command == "tables":
        from transforms.storage import Target

        return _tables(Target(args.output, args.storage_options))
    from transforms.tuning import restored

    with restored():  # small jobs run their steps in this process, which may be someone else's program
        return _run_job(args, beam_flags, run)


def _on_signal(signum: int, active) -> None:
    """On the signal watcher thread: stop everything this run started, say so in one line, exit."""
    import signal

    from pipelines.lifecycle import EXIT_INTERRUPTED, EXIT_TERMINATED

    what = "interrupted" if signum == signal.SIGINT else "terminated"
    state = "nothing"
    try:
        if active is not None:
            state = active.stop()
    finally:
        if state == "published":
            said = "after this run was published: the output is this run's, complete"
        else:
            said = "nothing was published, the previous output is unchanged" + ("; this run's folder was removed" if state == "removed" else "")
        sys.stderr.write(f"\nframebeam: {what}; {said}.\n")
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_TERMINATED)


def _sample(directory: str) -> int:
    from transforms.sample import write_sample

    manifest = write_sample(directory)
    print(f"Wrote the sample dataset to {directory}: {manifest.get('frames', '?')} frames in {manifest.get('shards', '?')} shards.")
    print(f"Try: framebeam run --input '{directory}/frames-*' --mask-labels {directory}/mask_labels.json --output {directory}-out")
    return EXIT_OK


def _tables(output: "Target") -> int:
    from transforms.writing import table_globs

    try:
        globs = table_globs(output)
    except (OSError, KeyError, ValueError) as e:
        print(f"framebeam: {_no_complete_run(output, e)}", file=sys.stderr)
        return EXIT_MISUSE
    for table, glob in globs.items():
        print(f"{table}\t{glob}")
    return EXIT_OK


def _no_complete_run(output: "Target", error: Exception) -> str:
    """One line: why OUTPUT has no tables to show."""
    from transforms.uris import redact_uri

    shown = redact_uri(output.url)
    try:
        exists = output.exists()
    except Exception:  # noqa: BLE001
        exists = True
    if not exists:
        return f"{shown} does not exist: run framebeam convert, run or validate with --output {shown} first"
    if isinstance(error, FileNotFoundError):
        return f"{shown} holds no complete run yet (no _SUCCESS): a run into it has not finished, or failed"
    return f"{shown} holds no readable complete run ({type(error).__name__}: {redact_uri(str(error))[:200]})"


def _run_job(args: argparse.Namespace, beam_flags: list[str], run: dict) -> int:
    from pipelines.options import job_options_from_args
    from transforms.uris import redact_uri

    job = job_options_from_args(args.command, args)
    debug = getattr(args, "debug", False)
    from transforms.uris import install_log_redaction

    install_log_redaction()  # every log line (the run's log file included) goes through the one redaction function
    # The local job service relays every worker's start-up chatter as warnings; real failures still raise.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)

    from pipelines.runner import ActiveRun, InputError, RunFailed, run_job

    active = run["active"] = ActiveRun(job)

    def waiting(holder: dict) -> None:
        from transforms.lease import describe_holder

        print(f"framebeam: {redact_uri(job.output)} is in use by {describe_holder(holder)}; waiting up to "
              f"{args.wait_for_lock:g} s for it (--wait-for-lock)", file=sys.stderr, flush=True)

    try:
        summary = run_job(job, beam_flags, show_progress=not job.quiet, active=active,
                          wait_for_lock=args.wait_for_lock, debug=debug, on_wait=waiting)
    except InputError as e:
        print(f"framebeam: {redact_uri(str(e))}", file=sys.stderr)
        return EXIT_MISUSE
    except RunFailed as e:
        print(f"framebeam: {redact_uri(str(e))}.", file=sys.stderr)
        if not debug:
            print(f"framebeam: the full traceback is in {redact_uri(e.log_path or '?')} (or run again with --debug)", file=sys.stderr)
        return EXIT_MISUSE
    except Exception as e:  # noqa: BLE001 - a failure outside the pipeline (e.g. reading the summary back)
        if debug:
            import traceback

            traceback.print_exc()
        print(f"framebeam: the run failed ({type(e).__name__}: {redact_uri(str(e)).splitlines()[0][:300] if str(e) else ''}); "
              "run again with --debug for the traceback", file=sys.stderr)
        return EXIT_MISUSE
    if not job.quiet:
        from pipelines.runner import print_summary

        print_summary(summary, job)
    if job.command != "validate":
        return EXIT_OK
    return EXIT_OK if summary["passed"] else EXIT_FAILED_CHECKS


if __name__ == "__main__":
    sys.exit(main())
