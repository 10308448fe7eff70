"""What a shot may ask of the node that renders it: tags, a render device, a Blender
version range. The coordinator's claim and waiting reasons, `POST /api/shots`, the
add-on and `brender-submit` all check against these rules."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import FieldError
from .messages import MAX_TAG, MAX_TAGS  # a shot asks for tags as nodes carry them
from .text import name_text

DEVICE_CHOICES = ("cpu", "gpu", "any")
# Cycles' device types; CPU is every node's.
GPU_TYPES = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")
MAX_RANGE = 200                  # characters of a version range
VERSION = re.compile(r"^\s*(\d{1,3})(?:\.(\d{1,3}))?(?:\.(\d{1,3}))?\s*$")
CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*([0-9.\s]+)$")


def parse_tags(raw: Any, field: str) -> list[str]:
    """A list of tags (null: none), each once, in the order given."""
    if raw is None:
        return []
    if isinstance(raw, str):  # "gpu, bigram", as typed in a field
        raw = [t.strip() for t in raw.split(",") if t.strip()]
    if not isinstance(raw, list) or len(raw) > MAX_TAGS:
        raise FieldError(field, f"must be a list of at most {MAX_TAGS} tags")
    tags: list[str] = []
    for i, tag in enumerate(raw):
        if not isinstance(tag, str) or not tag.strip():
            raise FieldError(f"{field}[{i}]", "must be a non-empty string")
        tag = name_text(tag.strip(), f"{field}[{i}]", MAX_TAG)
        if "," in tag:
            raise FieldError(f"{field}[{i}]", "must not contain a comma")
        if tag not in tags:
            tags.append(tag)
    return tags


def parse_device(raw: Any, field: str = "device") -> str | None:
    """cpu, gpu, any, or None: the file's own setting."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or raw.lower() not in DEVICE_CHOICES:
        raise FieldError(field, f"must be one of {', '.join(DEVICE_CHOICES)} (or null: "
                                "the file's setting)")
    return raw.lower()


def parse_version(text: Any) -> tuple[int, ...]:
    """"3.4.1" -> (3, 4, 1); "5.0" -> (5, 0). ValueError when it is not a version."""
    match = VERSION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{str(text)[:40]!r} is not a Blender version such as 4.2 or 4.2.1")
    return tuple(int(p) for p in match.groups() if p is not None)


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in version)


def major_minor(version: str) -> tuple[int, ...]:
    return parse_version(version)[:2]


def _compare(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Compare `a` with `b` over `b`'s parts: 4.2.1 equals "4.2", is above "4.1"."""
    head = a[:len(b)] + (0,) * (len(b) - len(a))
    return (head > b) - (head < b)


@dataclass(frozen=True)
class VersionRange:
    """Clauses such as ">=4.2,<5"; a bare "4.2" means any 4.2.x."""
    clauses: tuple[tuple[str, tuple[int, ...]], ...]
    text: str

    @classmethod
    def parse(cls, text: Any) -> VersionRange:
        if not isinstance(text, str) or not text.strip():
            raise ValueError('must be a version range such as ">=4.2,<5" or "4.2"')
        if len(text) > MAX_RANGE:
            raise ValueError(f"is longer than {MAX_RANGE} characters")
        clauses = []
        for part in text.split(","):
            match = CLAUSE.match(part)
            if not match:
                raise ValueError(f"{part.strip()[:40]!r} is not a clause such as >=4.2")
            try:
                version = parse_version(match[2])
            except ValueError as exc:
                raise ValueError(str(exc)) from None
            clauses.append((match[1] or "==", version))
        return cls(tuple(clauses), ",".join(f"{op}{version_text(v)}" for op, v in clauses))

    def contains(self, version: str) -> bool:
        try:
            v = parse_version(version)
        except ValueError:
            return False
        for op, bound in self.clauses:
            c = _compare(v, bound)
            ok = {">=": c >= 0, ">": c > 0, "<=": c <= 0, "<": c < 0,
                  "==": c == 0, "!=": c != 0}[op]
            if not ok:
                return False
        return True

    def __str__(self) -> str:
        return self.text


def parse_range(raw: Any, field: str = "blender") -> str | None:
    """A version range, normalised ("" or null: none)."""
    if raw is None or raw == "":
        return None
    try:
        return VersionRange.parse(raw).text
    except ValueError as exc:
        raise FieldError(field, str(exc)) from None


def parse_saved_with(raw: Any, field: str = "blender_saved_with") -> str | None:
    if raw is None or raw == "":
        return None
    try:
        return version_text(parse_version(raw))
    except ValueError as exc:
        raise FieldError(field, str(exc)) from None


def has_gpu(devices: list[dict]) -> bool:
    return any(str(d.get("type", "")).upper() in GPU_TYPES for d in devices)
