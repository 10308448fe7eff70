"""Output formats and frame file names. No imports: Blender loads this file by path
(node/blender_driver.py), so it must stand alone."""

# The still formats a frame may be stored in, with the stored file's extension.
OUTPUT_FORMATS = {
    "PNG": "png",
    "JPEG": "jpg",
    "OPEN_EXR": "exr",
    "OPEN_EXR_MULTILAYER": "exr",
    "TIFF": "tif",
    "BMP": "bmp",
    "TARGA": "tga",
    "WEBP": "webp",
}
# Every still format Blender writes: a compositor File Output node (an extra output)
# may use any of them.
STILL_FORMATS = {
    **{k: v for k, v in OUTPUT_FORMATS.items() if k != "WEBP"},
    "TARGA_RAW": "tga",
    "WEBP": "webp",
    "JPEG2000": "jp2",
    "HDR": "hdr",
    "CINEON": "cin",
    "DPX": "dpx",
    "IRIS": "rgb",
}
# Blender's file formats that write a movie rather than one image per frame.
MOVIE_FORMATS = ("FFMPEG", "AVI_JPEG", "AVI_RAW", "FRAMESERVER", "QUICKTIME", "H264",
                 "THEORA", "XVID")
EXR_FORMATS = ("OPEN_EXR", "OPEN_EXR_MULTILAYER")
COLOR_DEPTHS = ("8", "16", "32")
# The depths Blender offers per format; formats not listed have 8 bits only.
FORMAT_DEPTHS = {"PNG": ("8", "16"), "TIFF": ("8", "16"), "OPEN_EXR": ("16", "32"),
                 "OPEN_EXR_MULTILAYER": ("16", "32")}
COLOR_MODES = ("BW", "RGB", "RGBA")
NO_ALPHA = ("JPEG", "BMP")
EXR_CODECS = ("NONE", "PXR24", "ZIP", "PIZ", "RLE", "ZIPS", "B44", "B44A", "DWAA", "DWAB")
# What people type for a format (a file extension) and the farm's name for it.
ALIASES = {"JPG": "JPEG", "EXR": "OPEN_EXR", "TGA": "TARGA", "TIF": "TIFF"}
DEFAULT_FORMAT = "PNG"   # a frame uploaded without X-Output-Format, of a shot without one


def frame_stem(number: int) -> str:
    """`frame_000042`, `frame_-000007`: the name of frame `number` without extension."""
    return f"frame_{'-' if number < 0 else ''}{abs(number):06d}"


def frame_name(number: int, output_format: str) -> str:
    """The stored file name of frame `number` written in `output_format`."""
    return f"{frame_stem(number)}.{OUTPUT_FORMATS[output_format]}"
