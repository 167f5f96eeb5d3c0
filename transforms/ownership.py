"""Whose folder is OUTPUT: framebeam writes only inside an output it created or marked as its own.

Before any work, ``check_output`` looks at OUTPUT (no writes): an existing file, or a folder holding
anything framebeam did not write, is refused. ``check_overlap`` refuses an OUTPUT that equals, contains
or lies inside a folder the run reads (input shards' folders, where masks are, the class table's
folder): the outputs of one run would otherwise become the inputs (or the victims) of the next.
``claim_output`` then creates the folder and writes the marker ``_FRAMEBEAM_OUTPUT`` (the first write,
so it doubles as the write probe). Nothing here ever moves or deletes a file.
"""
from __future__ import annotations

import errno
import os
import posixpath
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import fsspec
import orjson

from transforms.storage import Target

MARKER = "_FRAMEBEAM_OUTPUT"
RUNS_DIR = "_runs"
CURRENT_LINK = "_current"
LOGS_DIR = "_logs"
LEASE = "_LEASE"
SUCCESS = "_SUCCESS"
SUMMARY = "summary.json"
# Names framebeam writes at the top of an output (tables and report are links into _current on local disk).
OWN_NAMES = frozenset({MARKER, RUNS_DIR, CURRENT_LINK, LOGS_DIR, LEASE, f"{LEASE}.guard", SUCCESS, SUMMARY})


class OutputRefused(Exception):
    """OUTPUT cannot be used; the message is one line that says why and what to do."""


class OutputState(NamedTuple):
    exists: bool
    owned: bool                 # the marker is there
    foreign: tuple[str, ...]    # entries framebeam did not write (a few, for the message)


def output_state(output: Target | str) -> OutputState:
    """What OUTPUT holds now. Raises OutputRefused when it is a file."""
    target = Target.of(output)
    output, out = target.url, target.path
    if target.is_local:
        return _local_state(output, out)
    try:
        entries = target.ls(detail=True)
    except FileNotFoundError:
        return OutputState(False, False, ())
    if len(entries) == 1 and entries[0]["name"].rstrip("/") == out.rstrip("/") and entries[0]["type"] == "file":
        raise OutputRefused(f"--output {output} is an object, not a folder: give a folder (prefix) path")
    names = {posixpath.basename(e["name"].rstrip("/")): e for e in entries}
    if MARKER in names:
        return OutputState(True, True, ())
    foreign = tuple(sorted(n for n in names if n not in OWN_NAMES))
    if not foreign and SUCCESS in names and RUNS_DIR in names:
        return OutputState(True, True, ())  # written by framebeam before the marker existed
    return OutputState(bool(names), False, foreign)


def _local_state(output: str, out: str) -> OutputState:
    if not os.path.lexists(out):
        return OutputState(False, False, ())
    if not os.path.isdir(out):
        kind = "a broken link" if os.path.islink(out) and not os.path.exists(out) else "a file"
        raise OutputRefused(f"--output {output} is {kind}, not a folder: give a new or empty folder (framebeam creates it)")
    try:
        names = os.listdir(out)
    except PermissionError:
        raise OutputRefused(f"--output {output}: permission denied reading the folder; give a folder you can write") from None
    if MARKER in names:
        return OutputState(True, True, ())
    foreign = tuple(sorted(n for n in names if not _written_by_framebeam(out, n)))
    if not foreign and names:
        return OutputState(True, True, ())  # written by framebeam before the marker existed: only its own names
    return OutputState(bool(names), False, foreign)


def _written_by_framebeam(out: str, name: str) -> bool:
    path = os.path.join(out, name)
    if name in (RUNS_DIR, LOGS_DIR) and os.path.isdir(path) and not os.path.islink(path):
        return True
    if os.path.islink(path):
        target = os.readlink(path)
        return (name == CURRENT_LINK and target.startswith(f"{RUNS_DIR}/")) or target == f"{CURRENT_LINK}/{name}" \
            or bool(re.fullmatch(rf"{CURRENT_LINK}/.+|{RUNS_DIR}/.+", target) and ".tmp-" in name)
    return False


def check_output(output: Target | str) -> OutputState:
    """Refuse (OutputRefused) an OUTPUT that is a file or a folder holding what framebeam did not write.

    Reads only; fast (one listing), so it runs before anything else."""
    target = Target.of(output)
    output, out = target.url, target.path
    state = output_state(target)
    if state.exists and not state.owned and state.foreign:
        shown = ", ".join(repr(n) for n in state.foreign[:3]) + (f" and {len(state.foreign) - 3} more" if len(state.foreign) > 3 else "")
        raise OutputRefused(f"--output {output} already holds files framebeam did not write ({shown}); framebeam writes only "
                            f"into a new or empty folder, or one it created: choose another --output")
    if target.is_local and not state.exists:
        parent = os.path.dirname(os.path.abspath(out))
        while parent and not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        if parent and not os.path.isdir(parent):
            raise OutputRefused(f"--output {output}: {parent} is a file, so the folder cannot be created there; choose another --output")
    return state


# --- overlap with what the run reads ------------------------------------------------------------------

def _split(uri: str) -> tuple[str, str]:
    """(protocol, normalised absolute path) to compare locations: local paths resolved (links followed)."""
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", uri)
    if not m:
        return "file", os.path.realpath(os.path.abspath(uri))
    protocol = {"gcs": "gs", "s3a": "s3"}.get(m.group(1).lower(), m.group(1).lower())
    return protocol, posixpath.normpath("/" + uri[m.end():]).rstrip("/") or "/"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_overlap(output: str, folders: Iterable[tuple[str, str]]) -> None:
    """Refuse an OUTPUT that equals, contains or lies inside a folder the run reads.

    ``folders``: (what, folder) pairs, e.g. ("input shards", "data/"), ("masks", "data/masks")."""
    o_proto, o_path = _split(output)
    for what, folder in folders:
        proto, path = _split(folder)
        if proto != o_proto:
            continue
        if o_path == path:
            relation = "is"
        elif _inside(o_path, path):
            relation = "lies inside"
        elif _inside(path, o_path):
            relation = "contains"
        else:
            continue
        raise OutputRefused(f"--output {output} {relation} the folder of the {what} ({folder}); a run must not write where it reads: "
                            f"choose an --output outside it")


def folder_of(uri: str) -> str:
    return posixpath.dirname(uri.rstrip("/")) or "."


def folders_read(shards: Sequence[Target | str], mask_labels: str | None) -> list[tuple[str, str]]:
    """The folders a run reads, for ``check_overlap``: the shards', the class table's, and those of the
    mask and source URIs named in the first bytes of the first shards (read with their storage options)."""
    shards = [Target.of(s) for s in shards]
    folders = [("input shards", f) for f in sorted({folder_of(s.url) for s in shards})]
    if mask_labels:
        folders.append(("class table (--mask-labels)", folder_of(mask_labels)))
    folders += [("masks and sources the frames name", f) for f in sorted(sample_mask_folders(shards))]
    return folders


_URI_FIELD = re.compile(rb'"uri"\s*:\s*"((?:[^"\\]|\\.)*)"')


def sample_mask_folders(shards: Sequence[Target | str], max_shards: int = 8, max_bytes: int = 256 * 1024) -> set[str]:
    """Folders of the mask and source URIs named in the first bytes of the first shards (a cheap look,
    not a promise: the folders of relative URIs are inside the shard folders, which are checked whole)."""
    from transforms.uris import resolve_uri

    folders: set[str] = set()
    for shard in map(Target.of, shards[:max_shards]):
        try:
            with fsspec.open(shard.url, "rb", compression="infer", **shard.storage_options) as f:
                head = f.read(max_bytes)
        except Exception:  # noqa: BLE001 - a shard that cannot be read here becomes a finding in the run
            continue
        for m in _URI_FIELD.finditer(head):
            try:
                uri = orjson.loads(b'"' + m.group(1) + b'"')
            except orjson.JSONDecodeError:
                continue
            if isinstance(uri, str) and uri and not uri.startswith(("http://", "https://")):
                folders.add(folder_of(resolve_uri(uri, shard.url)))
    return folders


# --- claiming ----------------------------------------------------------------------------------------

def claim_output(output: Target | str, state: OutputState | None = None) -> None:
    """Create OUTPUT when needed and write the marker (the first write: failures here are the user's to fix)."""
    target = Target.of(output)
    state = state or output_state(target)
    marker = target.join(MARKER)
    try:
        if target.is_local:
            os.makedirs(target.path, exist_ok=True)
        if not state.owned or not marker.exists():
            from transforms.writing import now_iso

            marker.write_bytes(orjson.dumps({"written_by": "framebeam", "created_at": now_iso(),
                                             "note": "framebeam owns this folder: it writes, replaces and deletes only its own files here"}))
    except Exception as e:  # noqa: BLE001 - classified into one line
        raise OutputRefused(f"--output {target.url}: cannot write there ({describe_storage_error(e)})") from None


def describe_storage_error(e: BaseException) -> str:
    """A short, fixable description of a storage failure (no traceback)."""
    from transforms.uris import redact_text

    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return "no space left on the device: free space or choose another --output"
    if isinstance(e, OSError) and e.errno == errno.EROFS:
        return "read-only file system"
    if isinstance(e, PermissionError) or "AccessDenied" in str(e) or "Forbidden" in str(e) or "403" in str(e):
        return "permission denied: check the folder's permissions or the credentials"
    if "NoSuchBucket" in str(e) or (isinstance(e, FileNotFoundError) and "bucket" in str(e).lower()):
        return "the bucket does not exist"
    text = redact_text(str(e)).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__
