"""Read a .blend's scenes (frame range, camera, output format...) without Blender.

bpy-free, built on Blender Asset Tracer's blendfile reader, which also reads
gzip- and Zstandard-compressed files. `brender-submit` uses it to take the
shot's defaults from the file and run the pre-flight checks before uploading, and
to tell the farm which Blender saved the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import preflight
from .packing import PackError, import_bat, zstd_unreadable

# Blender's R_IMF_IMTYPE_* codes (DNA_scene_types.h) by their Python names.
IMAGE_TYPES = {
    0: "TARGA", 1: "IRIS", 4: "JPEG", 7: "IRIZ", 14: "TARGA_RAW", 15: "AVI_RAW",
    16: "AVI_JPEG", 17: "PNG", 19: "QUICKTIME", 20: "BMP", 21: "HDR", 22: "TIFF",
    23: "OPEN_EXR", 24: "FFMPEG", 25: "FRAMESERVER", 26: "CINEON", 27: "DPX",
    28: "OPEN_EXR_MULTILAYER", 29: "DDS", 30: "JPEG2000", 31: "H264", 32: "XVID",
    33: "THEORA", 34: "PSD", 35: "WEBP",
}
OB_CAMERA = 11


class BlendReadError(PackError):
    """The file is not a .blend this reader understands (corrupt, truncated...)."""


@dataclass
class SceneInfo:
    name: str
    frame_start: int
    frame_end: int
    frame_step: int
    camera: str | None
    output_format: str
    resolution_x: int
    resolution_y: int
    resolution_percentage: int
    fps: float
    view_layers: list[str] = field(default_factory=list)          # every layer, in order

    def facts(self, cameras: set[str]) -> preflight.SceneFacts:
        return preflight.SceneFacts(
            name=self.name, camera=self.camera, output_format=self.output_format,
            frame_start=self.frame_start, frame_end=self.frame_end, frame_step=self.frame_step,
            view_layers=list(self.view_layers), cameras=set(cameras))


@dataclass
class BlendInfo:
    path: Path
    active_scene: str | None
    scenes: dict[str, SceneInfo]
    cameras: set[str]                 # names of the camera objects in the file
    compression: str                  # "none", "gzip" or "zstd"
    saved_with: str | None = None     # "3.4": the Blender series that saved the file

    def scene(self, name: str | None) -> SceneInfo:
        """The scene `name`, else the file's active scene; SpecError when there is none."""
        wanted = name if name is not None else self.active_scene
        if wanted is None and len(self.scenes) == 1:
            wanted = next(iter(self.scenes))
        if wanted not in self.scenes:
            known = ", ".join(sorted(self.scenes)) or "none"
            raise preflight.SpecError(
                f"{self.path.name} has no scene {wanted!r} (its scenes: {known}).", "render.scene")
        return self.scenes[wanted]


def _name(block: Any) -> str:
    return bytes(block.id_name[2:]).decode("utf-8", "replace")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _scene(block: Any) -> SceneInfo:
    def render(*path: bytes) -> Any:
        return block[(b"r", *path)]

    camera = block.get_pointer(b"camera")
    layers = []
    layer = block.get_pointer((b"view_layers", b"first"))
    while layer is not None:
        layers.append(_text(layer[b"name"]))
        layer = layer.get_pointer(b"next")
    imtype = int(render(b"im_format", b"imtype"))
    return SceneInfo(
        name=_name(block), frame_start=int(render(b"sfra")), frame_end=int(render(b"efra")),
        frame_step=int(render(b"frame_step")),
        camera=_name(camera) if camera is not None else None,
        output_format=IMAGE_TYPES.get(imtype, f"UNKNOWN_{imtype}"),
        resolution_x=int(render(b"xsch")), resolution_y=int(render(b"ysch")),
        resolution_percentage=int(render(b"size")),
        fps=float(render(b"frs_sec")) / (float(render(b"frs_sec_base")) or 1.0), view_layers=layers)


def saved_with(header_version: int) -> str | None:
    """The file header's version field as a Blender series: 304 -> "3.4" (the
    12-byte header of Blender 2.x-4.x, "BLENDER-v304"), 500 -> "5.0" (Blender 5's
    17-byte "BLENDER17-01v0500"); BAT reads both into `header.version`."""
    if header_version <= 0:
        return None
    return f"{header_version // 100}.{header_version % 100}"


def read(path: Path) -> BlendInfo:
    """Read `path`'s scenes; BlendReadError (one clear line) when it cannot."""
    import_bat()
    from blender_asset_tracer import blendfile
    from blender_asset_tracer.blendfile import magic_compression

    path = Path(path)
    try:
        with open(path, "rb") as f:
            compression = magic_compression.find_compression_type(f)
        kind = {magic_compression.Compression.GZIP: "gzip",
                magic_compression.Compression.ZSTD: "zstd"}.get(compression, "none")
        unreadable = zstd_unreadable(path)
        if unreadable:
            raise BlendReadError(unreadable)
        bfile = blendfile.BlendFile(path)
        try:
            globs = bfile.find_blocks_from_code(b"GLOB")
            current = globs[0].get_pointer(b"curscene") if globs else None
            scenes = {info.name: info for info in map(_scene, bfile.find_blocks_from_code(b"SC"))}
            cameras = {_name(ob) for ob in bfile.find_blocks_from_code(b"OB")
                       if int(ob[b"type"]) == OB_CAMERA}
            active = _name(current) if current is not None else None
            version = saved_with(int(bfile.header.version))
        finally:
            bfile.close()
    except BlendReadError:
        raise
    except OSError as err:
        raise BlendReadError(f"Cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # BAT's errors for a file it cannot parse, of many kinds
        reason = err.args[0] if err.args and isinstance(err.args[0], str) else type(err).__name__
        raise BlendReadError(f"{path} is not a readable .blend file ({reason}).") from None
    if not scenes:
        raise BlendReadError(f"{path} has no scene to render.")
    return BlendInfo(path=path, active_scene=active, scenes=scenes, cameras=cameras,
                     compression=kind, saved_with=version)

