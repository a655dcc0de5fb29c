"""Label import and export formats, Qt-free and database-free: a :class:`LabelSet` in, files
out, and back.

======================  ==========================================================  ===========
format                  what it cannot carry                                        boxes
======================  ==========================================================  ===========
``coco`` COCO JSON      nothing (image class and attributes in ``images[].edgeloop``)  exact
``yolo`` YOLO txt       attributes; sizes come from the image files                  1e-6 px
``voc`` Pascal VOC      attributes                                                   1e-6 px
``imagefolder``         boxes, images without a class, attributes (refused unless    none
                        lossy); sizes come from the image files
``labelstudio``         nothing (file name, size, attributes in ``data.edgeloop``)    1e-6 px
``cvat`` CVAT 1.1       attributes                                                   1e-6 px
======================  ==========================================================  ===========

Every format carries the classes in order, the file names, the sizes and the image class;
each module's docstring says where. "Loses nothing" is
:func:`~app.annotate.formats.labelset.differences` finding nothing with the format's
``tolerance_px`` (and ``attributes`` compared where ``carries_attributes``).

:func:`write_labels` writes into a fresh folder next to the target and renames it into
place at the end, so a failed or cancelled export leaves no half-written dataset.
:func:`read_labels` raises :class:`~app.core.errors.InvalidInput` naming the file and the
problem for any malformed input, and nothing else.
"""

from __future__ import annotations

import enum
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from app.annotate.formats import coco, cvat, imagefolder, labelstudio, voc, yolo
from app.annotate.formats.common import ImageSource, Tick, invalid, no_tick
from app.annotate.formats.labelset import (
    Box, FolderLabels, LabeledImage, LabelSet, Skipped, differences,
)
from app.core.errors import InvalidInput

__all__ = [
    "Box", "FORMATS", "FolderLabels", "Format", "FormatInfo", "LabelSet", "LabeledImage",
    "Skipped", "check_out_dir", "differences", "format_named", "read_labels", "write_labels",
]


class Format(str, enum.Enum):
    """The label formats, by the name the CLI and the GUI use."""

    COCO = "coco"
    YOLO = "yolo"
    VOC = "voc"
    IMAGEFOLDER = "imagefolder"
    LABELSTUDIO = "labelstudio"
    CVAT = "cvat"


@dataclass(frozen=True)
class FormatInfo:
    """What a format is called, where its code is, and what survives a round trip."""

    format: Format
    title: str
    module: ModuleType
    carries_attributes: bool
    carries_boxes: bool
    carries_unclassified: bool
    """Whether an image without a class can be in it at all."""
    tolerance_px: float
    needs_images_to_read: bool


def _info(fmt: Format, module: ModuleType, *, boxes: bool = True, unclassified: bool = True,
          images_to_read: bool = False) -> FormatInfo:
    return FormatInfo(fmt, module.TITLE, module, module.CARRIES_ATTRIBUTES, boxes, unclassified,
                      module.TOLERANCE_PX, images_to_read)


FORMATS: dict[Format, FormatInfo] = {
    Format.COCO: _info(Format.COCO, coco),
    Format.YOLO: _info(Format.YOLO, yolo, images_to_read=True),
    Format.VOC: _info(Format.VOC, voc),
    Format.IMAGEFOLDER: _info(Format.IMAGEFOLDER, imagefolder, boxes=False, unclassified=False,
                              images_to_read=True),
    Format.LABELSTUDIO: _info(Format.LABELSTUDIO, labelstudio),
    Format.CVAT: _info(Format.CVAT, cvat),
}


def format_named(name: str | Format) -> FormatInfo:
    """The format called ``name`` (``coco``, ``yolo``, ...), or InvalidInput listing them."""
    try:
        return FORMATS[Format(name)]
    except ValueError:
        raise InvalidInput(f"unknown label format {name!r}; use one of "
                           + ", ".join(f.value for f in Format)) from None


def check_out_dir(out_dir: Path) -> Path:
    """``out_dir`` if an export may be written there (absent, or an empty folder)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidInput(f"{out_dir} is not an empty folder; export into a new or empty "
                           "folder, so no old file is mixed into the dataset")
    return out_dir


def write_labels(fmt: str | Format, labels: LabelSet, out_dir: Path, *,
                 images: ImageSource | None = None, lossy: bool = False,
                 tick: Tick = no_tick) -> list[str]:
    """Write ``labels`` in ``fmt`` into ``out_dir`` (absent or empty), copying each image
    from ``images(file_name)`` when given. Returns notes on what was dropped (only with
    ``lossy``). Built in a temporary sibling folder and renamed into place at the end."""
    info = format_named(fmt)
    out_dir = check_out_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        try:
            notes = info.module.write(labels, work, images=images, lossy=lossy, tick=tick)
        except OSError as exc:
            raise InvalidInput(f"could not write the {info.title} export into {out_dir.parent} "
                               f"({exc.strerror or exc}); free space or fix permissions, then "
                               "try again") from exc
        os.chmod(work, 0o755)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(work, out_dir)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return notes


def read_labels(fmt: str | Format, folder: Path) -> FolderLabels:
    """Read the labels of a dataset in ``fmt`` at ``folder``; see the module docstring."""
    info = format_named(fmt)
    folder = Path(folder)
    if not folder.exists():
        raise invalid(folder, "no such file or folder")
    try:
        return info.module.read(folder)
    except InvalidInput as exc:
        if str(folder) in str(exc):
            raise
        raise invalid(folder, str(exc)) from None
    except OSError as exc:
        raise invalid(folder, f"cannot read the {info.title} dataset "
                              f"({exc.strerror or exc})") from None
