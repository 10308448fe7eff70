"""Each shot's files laid out as the artist's tree had them: one layout per (farm, shot).

A layout lives at `projects/<farm key>/<shot id>/`. Two farms (or a farm whose data dir
started afresh and counts its shots from 1 again) never share one, and every file is
checked against the shot's sha256 as it is laid out, so a node renders exactly the files
of the shot it leased. `.brender-layout.json` in a layout lists its files; its mtime says
when the layout was last used (the cache cleaning goes by it).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path, PurePosixPath

from .cache import BlobCache, CacheError

MANIFEST = ".brender-layout.json"
FARM_ID = re.compile(r"^[0-9a-f]{32}$")
URL_KEY = re.compile(r"^url-[0-9a-f]{24}$")


def farm_key(farm_id: object, coordinator_url: str) -> str:
    """The welcome's farm_id; from a coordinator that sends none, one made of its URL."""
    if isinstance(farm_id, str) and FARM_ID.match(farm_id):
        return farm_id
    url = coordinator_url.rstrip("/").lower().encode()
    return "url-" + hashlib.sha256(url).hexdigest()[:24]


def is_farm_key(name: str) -> bool:
    return bool(FARM_ID.match(name) or URL_KEY.match(name))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Layouts:
    def __init__(self, root: Path, blobs: BlobCache):
        self.root = root
        self.blobs = blobs

    def path(self, farm: str, shot_id: int) -> Path:
        return self.root / farm / str(int(shot_id))

    def lay_out(self, farm: str, shot_id: int, files: list[dict]) -> Path:
        """Make the layout hold exactly `files` (their blobs are in the cache)."""
        project = self.path(farm, shot_id)
        project.mkdir(parents=True, exist_ok=True)
        root = project.resolve()
        wanted: dict[Path, str] = {}
        for f in files:
            rel = PurePosixPath(f["path"])
            dest = (root / rel).resolve()
            if rel.is_absolute() or ".." in rel.parts or root not in dest.parents or \
                    rel.name == MANIFEST:
                raise CacheError(f"refusing a path outside the project: {f['path']}")
            wanted[dest] = f["sha256"]
        self._remove_others(root, wanted)
        for dest, sha in wanted.items():
            self._place(dest, sha)
        manifest = root / MANIFEST
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps({"farm": farm, "shot_id": int(shot_id),
                                   "files": [{"path": f["path"], "sha256": f["sha256"]}
                                             for f in files]}))
        os.replace(tmp, manifest)  # also marks the layout as used now
        return project

    def _place(self, dest: Path, sha: str) -> None:
        blob = self.blobs.path(sha)
        if dest.is_symlink() or dest.is_dir():
            _remove(dest)
        elif dest.is_file():
            if os.path.samefile(dest, blob) or file_sha256(dest) == sha:
                return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.brender-tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(blob, tmp)
        except OSError:
            shutil.copyfile(blob, tmp)
        os.replace(tmp, dest)

    @staticmethod
    def _remove_others(root: Path, wanted: dict[Path, str]) -> None:
        """Files left by an earlier use of this layout that the shot does not list."""
        keep_dirs = {p for dest in wanted for p in dest.parents}
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            here = Path(dirpath)
            for name in filenames:
                path = here / name
                if path not in wanted and path != root / MANIFEST:
                    path.unlink()
            for name in dirnames:
                path = here / name
                if path.is_symlink():
                    path.unlink()
                elif path not in keep_dirs and not any(path.iterdir()):
                    path.rmdir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
