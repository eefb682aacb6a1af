"""`reid-export index migrate GALLERY --model NEW -o GALLERY2`: a gallery moved to a new model.

    migrate_gallery("runs/gallery", "engines/model-v2.onnx", "runs/gallery-v2")

Every stored crop of GALLERY is embedded again with the new model (by the same engines and commits as
`index build`: `--engine ray` spreads the work over a Ray cluster) into a new gallery that keeps each
item's id, source name, person id, camera and the time it was added; attributes are the new model's.
GALLERY itself is only read, never changed (and stays servable with the old model). The new gallery's
manifest records its `lineage`: the gallery it came from and that gallery's model (name, sha256, arch,
contract), beside its own model. A gallery is never mixed: `index add` with another model than the
gallery's is refused, naming both models and this command. Then `serve` can switch to the new model and
gallery without downtime (`POST /v1/admin/switch`, `serve/switch.py`).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from ..errors import DataError
from ..images import first_examples
from ..runtimes import make_runtime, parse_model_spec
from .gallery import Gallery, model_identity
from .indexing import (
    BUILD_CHUNK,
    Engine,
    ImageFile,
    LocalEngine,
    Tally,
    add_results,
    new_gallery_folder,
)

__all__ = ["migrate_gallery"]


def migrate_gallery(gallery_dir: str | Path, model_spec: str, out: str | Path, *, overwrite: bool = False,
                    batch_size: int = 64, engine: Engine | None = None, progress: bool = True, log=None) -> Path:
    """Re-embed every item of `gallery_dir` with `model_spec` into a new gallery at `out` (atomically); returns
    `out`. A crop that cannot be read or decoded any more stops the migration (the new gallery would silently
    lose that person), naming the items."""
    gallery_dir = Path(gallery_dir)
    name, path = parse_model_spec(model_spec)
    source = Gallery.open(gallery_dir)  # read-only: no lock, nothing written
    files = [ImageFile(source.image_path(item.id), item.pid, item.camid, origin=item) for item in source.items]
    if not files:
        raise DataError(f"gallery {gallery_dir} holds no items; there is nothing to migrate (build the new "
                        "gallery from images with `reid-export index build`)")
    with new_gallery_folder(out, inputs=[gallery_dir, path], overwrite=overwrite) as tmp:
        with make_runtime(name, path) as runtime:
            identity = model_identity(runtime)
            lineage = {"gallery": str(gallery_dir.resolve()), "model": asdict(source.model),
                       "generation": source.generation, "items": len(source), "migrated_at": time.time()}
            tally = Tally(len(files), known=None)  # every item is copied, duplicates of bytes included
            results = (engine or LocalEngine()).results(runtime, files, None, batch_size=batch_size, chunk=BUILD_CHUNK)
            gallery = add_results(results, lambda dim: Gallery.create(tmp, identity, dim, lineage=lineage), tally,
                                  commit_every=BUILD_CHUNK, progress=progress, label=runtime.name)
            if tally.unreadable:
                raise DataError(f"gallery {gallery_dir}: {len(tally.unreadable)} stored crops cannot be read or "
                                f"decoded ({first_examples(tally.unreadable)}); remove those items with "
                                f"`reid-export index remove {gallery_dir} ID...` (or restore their crops), then "
                                "migrate again; nothing was written")
            gallery.close()
    if log is not None:
        log(f"gallery {out}: {tally.added} items of {gallery_dir} re-embedded with {identity.describe()} "
            f"(was {source.model.describe()})")
    return Path(out)
