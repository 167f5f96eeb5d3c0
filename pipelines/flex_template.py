"""Entry point for the Dataflow Flex Template launcher (``FLEX_TEMPLATE_PYTHON_PY_FILE``).

The launcher runs this file with every template parameter as ``--name=value`` (names as in
deploy/metadata.json: ``command``, ``input``, ``mask_labels``, ...) followed by the Dataflow options it
adds itself (``--project``, ``--region``, ``--job_name``, ``--temp_location``, ...). This module turns
that into the ``framebeam`` command line, builds the same pipeline the CLI builds and submits it
WITHOUT waiting: a Flex Template launcher must return once the job is submitted.

Template values are single strings, so three translations happen here:
  * ``--command=run`` becomes the sub-command;
  * boolean flags take ``true``/``false`` (``--crop_png=true`` -> ``--crop-png``);
  * repeatable flags (``input``, ``allow_uri_prefix``) take comma-separated values.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pipelines.options import COMMANDS

COMMAND_PARAMETER = "command"
# The image the launcher runs in; the Dockerfile sets it so workers run the very same image.
SDK_IMAGE_ENV = "FRAMEBEAM_SDK_CONTAINER_IMAGE"
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


class FlexParameterError(ValueError):
    """A template parameter framebeam cannot turn into a command line; the message says how to fix it."""


@dataclass(frozen=True)
class JobFlag:
    """One framebeam flag as a Flex Template parameter."""

    flag: str  # "--mask-labels", as the CLI spells it
    takes_value: bool  # False for on/off switches (store_true)
    repeatable: bool  # nargs="+" / action="append": comma-separated in a template parameter
    commands: frozenset[str]  # the sub-commands that accept it

    @property
    def parameter(self) -> str:
        """The template parameter name: Beam's spelling (underscores), like ``sdk_container_image``."""
        return self.flag.removeprefix("--").replace("-", "_")


def job_flags(parser: argparse.ArgumentParser) -> dict[str, JobFlag]:
    """framebeam's own flags of convert/validate/run, by template parameter name, read from the CLI parser."""
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    found: dict[str, tuple[argparse.Action, set[str]]] = {}
    for command in COMMANDS:
        for action in subcommands[command]._actions:
            long_flags = [s for s in action.option_strings if s.startswith("--") and s != "--help"]
            for flag in long_flags:
                found.setdefault(flag, (action, set()))[1].add(command)
    flags = {}
    for flag, (action, commands) in found.items():
        repeatable = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)
        job_flag = JobFlag(flag, takes_value=action.nargs != 0, repeatable=repeatable, commands=frozenset(commands))
        flags[job_flag.parameter] = job_flag
    return flags


def cli_argv_from_template(argv: Sequence[str], flags: dict[str, JobFlag]) -> list[str]:
    """Template launcher arguments -> ``framebeam`` arguments; flags framebeam does not own pass through unchanged."""
    command: str | None = None
    job_args: list[str] = []
    passthrough: list[str] = []
    for token in argv:
        name, has_value, value = token.removeprefix("--").partition("=")
        key = name.replace("-", "_")
        if not token.startswith("--") or (key not in flags and key != COMMAND_PARAMETER):
            passthrough.append(token)  # Beam/Dataflow options (and their values), in order
            continue
        if key == COMMAND_PARAMETER:
            command = value
            continue
        job_flag = flags[key]
        if not job_flag.takes_value:
            if not has_value or value.strip().lower() in _TRUE:
                job_args.append(job_flag.flag)
            elif value.strip().lower() not in _FALSE:
                raise FlexParameterError(f"{key}={value!r}: use true or false")
            continue
        if not has_value:
            raise FlexParameterError(f"{key} needs a value: pass it as {key}=VALUE")
        values = [v.strip() for v in value.split(",")] if job_flag.repeatable else [value]
        for v in values:
            if v:
                job_args += [job_flag.flag, v]
    if command not in COMMANDS:
        raise FlexParameterError(f"parameter command={command!r}: set it to one of {', '.join(COMMANDS)}")
    if not any(t == "--runner" or t.startswith("--runner=") for t in passthrough):
        # Without a runner the CLI would run locally, on the launcher VM.
        passthrough.append("--runner=DataflowRunner")
    return [command, *job_args, *passthrough]


def _with_worker_image(beam_flags: list[str]) -> list[str]:
    """Workers must run the launcher's image (same pins); without it Dataflow would use Beam's stock image."""
    named = any(f.split("=")[0] in ("--sdk_container_image", "--setup_file", "--worker_harness_container_image") for f in beam_flags)
    image = os.environ.get(SDK_IMAGE_ENV)
    if named or not image:
        return beam_flags
    return [*beam_flags, f"--sdk_container_image={image}"]


def launch(argv: Sequence[str]):
    """Build the job from template arguments and submit it; returns Beam's PipelineResult without waiting."""
    from pipelines.cli import build_parser
    from pipelines.options import job_options_from_args, unknown_beam_flags
    from pipelines.runner import prepare_job

    parser = build_parser()
    args, beam_flags = parser.parse_known_args(cli_argv_from_template(argv, job_flags(parser)))
    unknown = unknown_beam_flags(beam_flags)
    if unknown:
        raise FlexParameterError(
            f"parameters neither framebeam's nor Apache Beam's: {' '.join(unknown)}; "
            "compare them with deploy/metadata.json and Beam's pipeline options"
        )
    job = job_options_from_args(args.command, args)
    pipeline, _ = prepare_job(job, _with_worker_image(beam_flags))
    return pipeline.run()  # Flex Templates must not wait: the launcher only submits


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from pipelines.runner import InputError

    try:
        launch(sys.argv[1:] if argv is None else argv)
    except (FlexParameterError, InputError) as e:
        print(f"framebeam flex template: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
