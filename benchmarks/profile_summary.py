"""Summarise a `py-spy record -f raw` profile: top functions by self and total samples.

    python -m benchmarks.profile_summary benchmarks/profiles/capacity-1000.txt [--top 30]
"""
from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:]*):(?P<line>\d+)\)$")


def short(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("/work/main/", "site-packages/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def summarise(path: Path, top: int = 30, thread_filter: str | None = None) -> str:
    self_counts: collections.Counter[str] = collections.Counter()
    total_counts: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = ""
        if frames and frames[0].startswith(("thread ", "process ")):
            # `--threads`: "thread (TID): NAME" (the name may be glued to the first frame)
            head = frames.pop(0)
            tid, _, rest = head.partition("): ")
            name, sep, first = rest.partition(";") if ";" in rest else (rest, "", "")
            thread = f"{tid})"
            if frames and " (" not in name:
                thread += f" {name}"
            elif " (" in name:
                frames.insert(0, name)
        threads[thread] += n
        if thread_filter and thread_filter not in thread:
            continue
        frames = [short(f) for f in frames]
        samples += n
        if frames:
            self_counts[frames[-1]] += n
        for f in set(frames):
            total_counts[f] += n
    out = [f"{path.name}: {samples} samples", "threads:"]
    out += [f"  {n:7d}  {t}" for t, n in threads.most_common(8)]
    out.append("self:")
    out += [f"  {100 * n / max(1, samples):5.1f}%  {f}" for f, n in self_counts.most_common(top)]
    out.append("total (inclusive):")
    out += [f"  {100 * n / max(1, samples):5.1f}%  {f}" for f, n in total_counts.most_common(top)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--thread", help="only stacks whose thread name contains this")
    args = p.parse_args()
    print(summarise(args.profile, args.top, args.thread))


if __name__ == "__main__":
    main()
