"""What a name or a path sent over the wire may hold. Each check raises FieldError
naming the field; the `*_problem` forms say why, or None."""
from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from .errors import FieldError

SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_PATH = 1024
MAX_PART_BYTES = 255        # a file name on every file system nodes use
# C0, DEL and C1 controls; NUL among them.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Bidirectional overrides and marks: they make a name display as something it is not.
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What Windows refuses in a file name, and its reserved device names (any extension).
WINDOWS_CHARS = re.compile(r'[<>:"|?*]')
WINDOWS_RESERVED = re.compile(r"^(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9\u00b9\u00b2\u00b3]|"
                              r"LPT[0-9\u00b9\u00b2\u00b3])(\..*)?$", re.IGNORECASE)


def text_problem(value: str, controls: bool = False) -> str | None:
    """Why `value` is not text the farm can store and send on, or None.

    Lone surrogates (what `json.dumps` of a `Path` made from a Latin-1 file name
    gives) cannot be encoded as UTF-8: the database would keep them and every later
    message carrying them would fail. `controls=True` allows control characters
    other than NUL (free text such as a log tail)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode text (it holds a lone surrogate)"
    if "\x00" in value:
        return "must not contain NUL characters"
    if not controls and CONTROL.search(value):
        return "must not contain control characters"
    return None


def name_problem(value: str) -> str | None:
    """`text_problem` for text shown to people: no bidirectional controls either."""
    problem = text_problem(value)
    if problem is None and BIDI.search(value):
        return "must not contain bidirectional control characters"
    return problem


def text(value: Any, field: str, max_len: int = 200) -> str:
    """A string of valid, encodable Unicode without control characters."""
    if not isinstance(value, str):
        raise FieldError(field, "must be a string")
    if len(value) > max_len:
        raise FieldError(field, f"is longer than {max_len} characters")
    problem = text_problem(value)
    if problem:
        raise FieldError(field, problem)
    return value


def name_text(value: Any, field: str, max_len: int = 200) -> str:
    """`text` that is also shown to people: no bidirectional controls either."""
    value = text(value, field, max_len)
    if BIDI.search(value):
        raise FieldError(field, "must not contain bidirectional control characters")
    return value


def sha256(value: Any, field: str = "sha256") -> str:
    if not isinstance(value, str) or not SHA256.match(value):
        raise FieldError(field, "must be 64 lowercase hex digits")
    return value


def path_problem(value: Any) -> str | None:
    """Why `value` is not a project-relative POSIX path that cannot leave its root and
    that every node (Linux, macOS, Windows) can create as it is, or None."""
    if not isinstance(value, str) or not value or len(value) > MAX_PATH:
        return "must be a non-empty relative path"
    problem = text_problem(value)
    if problem:
        return problem
    if "\\" in value:
        return "must use '/' and no control characters"
    if BIDI.search(value):
        return "must not contain bidirectional control characters"
    if PurePosixPath(value).is_absolute() or re.match(r"^[A-Za-z]:", value):
        return "must be relative"
    parts = value.split("/")
    if any(part in ("..", ".", "") for part in parts):
        return "must not contain '..', '.' or empty parts"
    for part in parts:
        if WINDOWS_CHARS.search(part):
            return f"{part[:40]!r}: Windows cannot name a file with any of < > : \" | ? *"
        if part[-1] in ". " or WINDOWS_RESERVED.match(part.rstrip(" .")):
            return f"{part[:40]!r} is a name Windows cannot create (a device name, or " \
                "ending in '.' or ' ')"
        if len(part.encode()) > MAX_PART_BYTES:
            return f"has a part longer than {MAX_PART_BYTES} bytes"
    return None


def relative_path(value: Any, field: str = "path") -> str:
    problem = path_problem(value)
    if problem:
        raise FieldError(field, problem)
    return str(value)


def file_tree_problem(paths: list[str], field: str = "files") -> tuple[str, str] | None:
    """(field, message) when the paths cannot all be laid out in one folder tree:
    one is also a folder of another ("a" beside "a/s.blend"), or two differ only in
    case (one file on Windows and macOS)."""
    folded: dict[str, int] = {}
    for i, path in enumerate(paths):
        key = path.casefold()
        if key in folded:
            return f"{field}[{i}].path", f"differs from files[{folded[key]}].path only in " \
                "case: Windows and macOS nodes cannot keep both"
        folded[key] = i
    for i, path in enumerate(paths):
        parts = path.casefold().split("/")
        for end in range(1, len(parts)):
            folder = "/".join(parts[:end])
            if folder in folded:
                return f"{field}[{folded[folder]}].path", f"is a file, and a folder of " \
                    f"files[{i}].path: no node can lay out both"
    return None
