"""Write scikit-image's bundled photos as a small folder dataset (the checkpoint example's data).

Usage: ``python make_photos.py photos`` writes ``photos/<class>/<image>.png``: four ImageNet classes
(cat, espresso, missile, moped) from ``skimage.data`` photos, five views of each (the photo, its
mirror image and three crops), offline. ``class_names.csv`` next to this script names the classes.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: class folder -> skimage.data photos (a function name, and an index for stereo pairs)
PHOTOS = {
    "cat": [("chelsea", None)],
    "espresso": [("coffee", None)],
    "missile": [("rocket", None)],
    "moped": [("stereo_motorcycle", 0), ("stereo_motorcycle", 1)],
}
#: crop boxes as fractions of the photo (left, top, right, bottom)
CROPS = [(0.125, 0.125, 0.875, 0.875), (0.0, 0.0, 0.8, 0.9), (0.2, 0.1, 1.0, 1.0)]
VIEWS_PER_CLASS = 5


def views(image):
    """Yield (name, view): the photo, its mirror image, then the crops."""
    from PIL import Image

    yield "full", image
    yield "mirror", image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    w, h = image.size
    for i, (left, top, right, bottom) in enumerate(CROPS):
        yield f"crop{i}", image.crop((int(left * w), int(top * h), int(right * w), int(bottom * h)))


def make_photos(out: Path) -> Path:
    """Write the dataset into ``out`` and return it."""
    import skimage.data
    from PIL import Image

    for folder, sources in PHOTOS.items():
        target = out / folder
        target.mkdir(parents=True, exist_ok=True)
        written = 0
        per_source = -(-VIEWS_PER_CLASS // len(sources))
        for name, index in sources:
            data = getattr(skimage.data, name)()
            photo = Image.fromarray(data[index] if index is not None else data).convert("RGB")
            for view_name, view in list(views(photo))[:per_source]:
                if written < VIEWS_PER_CLASS:
                    view.save(target / f"{name}{'' if index is None else index}_{view_name}.png")
                    written += 1
    return out


if __name__ == "__main__":
    print(make_photos(Path(sys.argv[1] if len(sys.argv) > 1 else "photos")))
