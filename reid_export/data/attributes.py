"""The 27 Market-1501 pedestrian attributes and their codes.

Names, order and codes follow the official ``market_attribute.mat`` (Lin et al., "Improving
person re-identification by attribute and identity learning"). Every field is an integer:
``age`` runs 1-4, every other field is 1 or 2 (1 = no, 2 = yes for the yes/no fields).
The colour fields are one flag per colour; the synthetic generator sets exactly one upper and
exactly one lower colour to 2, while the official file marks none or several for a few ids.

This module also reads and writes the official file (`load_market_attributes`,
`save_market_attributes`) and maps codes to model targets and back (`encode_targets`,
`decode_predictions`). The official file labels the *official* Market-1501 ids; the course
layout (`reid_export.data.course`) renumbered its ids, so its labels come from its own CSV.
scipy is imported by the functions that read or write .mat files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..files import atomic_path

__all__ = [
    "HEAD_GROUPS",
    "HEAD_OUTPUTS",
    "split_attributes",
    "ATTRIBUTE_NAMES",
    "UPPER_COLOURS",
    "LOWER_COLOURS",
    "ATTRIBUTE_CODES",
    "ATTRIBUTE_DOCS",
    "attribute_codes",
    "ATTRIBUTE_FILE",
    "BINARY_ATTRIBUTES",
    "ATTRIBUTE_TARGETS",
    "NUM_AGE_CLASSES",
    "NUM_BINARY",
    "NUM_UPPER_COLOURS",
    "NUM_LOWER_COLOURS",
    "NUM_TARGETS",
    "AGE_INDEX",
    "BINARY_SLICE",
    "UPPER_SLICE",
    "LOWER_SLICE",
    "check_codes",
    "encode_targets",
    "decode_predictions",
    "decode_probabilities",
    "codes_to_array",
    "load_market_attributes",
    "test_split_labels",
    "save_market_attributes",
]

UPPER_COLOURS: tuple[str, ...] = (
    "upblack", "upwhite", "upred", "uppurple", "upyellow", "upgray", "upblue", "upgreen",
)
LOWER_COLOURS: tuple[str, ...] = (
    "downblack", "downwhite", "downpink", "downpurple", "downyellow",
    "downgray", "downblue", "downgreen", "downbrown",
)
ATTRIBUTE_NAMES: tuple[str, ...] = (
    "gender", "hair", "up", "down", "clothes", "hat", "backpack", "bag", "handbag", "age",
) + UPPER_COLOURS + LOWER_COLOURS

_NO_YES = {1: "no", 2: "yes"}

# code -> meaning, for every field
ATTRIBUTE_CODES: dict[str, dict[int, str]] = {
    "gender": {1: "male", 2: "female"},
    "hair": {1: "short hair", 2: "long hair"},
    "up": {1: "long sleeves", 2: "short sleeves"},
    "down": {1: "long lower-body clothing", 2: "short lower-body clothing"},
    "clothes": {1: "dress", 2: "pants"},
    "hat": dict(_NO_YES),
    "backpack": dict(_NO_YES),
    "bag": dict(_NO_YES),
    "handbag": dict(_NO_YES),
    "age": {1: "young", 2: "teenager", 3: "adult", 4: "old"},
    **{name: dict(_NO_YES) for name in UPPER_COLOURS + LOWER_COLOURS},
}

# one line per field: what the field describes
ATTRIBUTE_DOCS: dict[str, str] = {
    "gender": "gender of the person",
    "hair": "length of the hair",
    "up": "sleeve length of the upper-body clothing",
    "down": "length of the lower-body clothing",
    "clothes": "type of the lower-body clothing",
    "hat": "wears a hat",
    "backpack": "carries a backpack",
    "bag": "carries a shoulder bag",
    "handbag": "carries a handbag",
    "age": "age group",
    **{name: f"upper-body clothing is {name[2:]}" for name in UPPER_COLOURS},
    **{name: f"lower-body clothing is {name[4:]}" for name in LOWER_COLOURS},
}

ATTRIBUTE_FILE = "market_attribute.mat"  # name of the official file (Market-1501_Attribute)

# Model targets: one integer vector of NUM_TARGETS entries per identity, laid out as
#   [AGE_INDEX]     age class 0..3 (young, teenager, adult, old) = code - 1, for a softmax head
#   [BINARY_SLICE]  BINARY_ATTRIBUTES as 0/1 = code - 1 (1 = female, long hair, short sleeves,
#                   short lower clothing, pants, hat, backpack, bag, handbag)
#   [UPPER_SLICE]   UPPER_COLOURS as 0/1 (1 = that colour is marked)
#   [LOWER_SLICE]   LOWER_COLOURS as 0/1
# ATTRIBUTE_TARGETS names every entry in that order.
BINARY_ATTRIBUTES: tuple[str, ...] = ("gender", "hair", "up", "down", "clothes", "hat", "backpack", "bag", "handbag")
ATTRIBUTE_TARGETS: tuple[str, ...] = ("age",) + BINARY_ATTRIBUTES + UPPER_COLOURS + LOWER_COLOURS
NUM_AGE_CLASSES = 4
NUM_BINARY = len(BINARY_ATTRIBUTES)
NUM_UPPER_COLOURS = len(UPPER_COLOURS)
NUM_LOWER_COLOURS = len(LOWER_COLOURS)
NUM_TARGETS = len(ATTRIBUTE_TARGETS)
AGE_INDEX = 0
BINARY_SLICE = slice(1, 1 + NUM_BINARY)
UPPER_SLICE = slice(BINARY_SLICE.stop, BINARY_SLICE.stop + NUM_UPPER_COLOURS)
LOWER_SLICE = slice(UPPER_SLICE.stop, UPPER_SLICE.stop + NUM_LOWER_COLOURS)

# A model's attribute head outputs (logits or probabilities) in this order: age classes | binary
# attributes | upper colours | lower colours.
HEAD_GROUPS = (("age", NUM_AGE_CLASSES), ("binary", NUM_BINARY), ("upper", NUM_UPPER_COLOURS),
               ("lower", NUM_LOWER_COLOURS))
HEAD_OUTPUTS = sum(n for _, n in HEAD_GROUPS)


def split_attributes(values):
    """(N, 30) attribute head outputs (tensor or array) -> {"age": (N, 4), "binary": (N, 9),
    "upper": (N, 8), "lower": (N, 9)}, views of the input."""
    out, start = {}, 0
    for name, size in HEAD_GROUPS:
        out[name] = values[:, start:start + size]
        start += size
    return out


def attribute_codes(name: str) -> tuple[int, ...]:
    """The codes a field may take, e.g. ``(1, 2, 3, 4)`` for ``age``."""
    if name not in ATTRIBUTE_CODES:
        raise DataError(f"unknown Market-1501 attribute {name!r}; expected one of {', '.join(ATTRIBUTE_NAMES)}")
    return tuple(ATTRIBUTE_CODES[name])


def check_codes(codes: Mapping[str, int], where: str = "attribute codes") -> None:
    """Raise a DataError unless `codes` holds exactly the 27 names with allowed integer codes.

    `where` starts the message, e.g. ``"train pid 0002"``.
    """
    missing = [name for name in ATTRIBUTE_NAMES if name not in codes]
    unknown = [str(name) for name in codes if name not in ATTRIBUTE_CODES]
    if missing or unknown:
        raise DataError(
            f"{where}: expected the 27 Market-1501 attributes, found {len(codes)} keys; "
            f"missing {missing or 'none'}, unknown {unknown or 'none'}. Fix: use the names in ATTRIBUTE_NAMES."
        )
    for name in ATTRIBUTE_NAMES:
        value = codes[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value not in ATTRIBUTE_CODES[name]:
            raise DataError(
                f"{where}: attribute {name!r} has code {value!r}; expected one of "
                f"{_allowed(name)}."
            )


def encode_targets(codes: Mapping[str, int]) -> np.ndarray:
    """The int64 target vector (layout in `ATTRIBUTE_TARGETS`) of one identity's 27 codes."""
    check_codes(codes, "encode_targets")
    return np.array([codes[name] - 1 for name in ATTRIBUTE_TARGETS], dtype=np.int64)


def decode_predictions(
    age_logits: Any,
    binary_probs: Any,
    upper_probs: Any,
    lower_probs: Any,
    *,
    one_hot_colours: bool = True,
    threshold: float = 0.5,
) -> dict[str, int] | list[dict[str, int]]:
    """Turn head outputs back into the 27 Market codes (`ATTRIBUTE_NAMES` order).

    Inputs are array-likes (numpy, CPU tensors) for one sample (1-D: 4, 9, 8 and 9 values) or a
    batch (2-D, same first dimension); the result is one dict or a list of dicts. Age is the argmax of `age_logits` plus 1. A binary
    attribute is 2 when its probability is >= `threshold`, else 1. With `one_hot_colours`, the
    argmax colour of each body half is 2 and the others 1 (how the course's
    classification_test.csv is filled); otherwise each colour is thresholded on its own.
    """
    parts = [np.asarray(a, dtype=np.float64) for a in (age_logits, binary_probs, upper_probs, lower_probs)]
    _check_prediction_shapes(parts)
    single = parts[0].ndim == 1
    age, binary, upper, lower = (a[None] if single else a for a in parts)
    age_codes = age.argmax(axis=1) + 1
    binary_codes = np.where(binary >= threshold, 2, 1)
    upper_codes, lower_codes = (_colour_codes(c, one_hot_colours, threshold) for c in (upper, lower))
    decoded = []
    for i in range(age.shape[0]):
        codes = {"age": int(age_codes[i])}
        codes.update(zip(BINARY_ATTRIBUTES, binary_codes[i].tolist()))
        codes.update(zip(UPPER_COLOURS, upper_codes[i].tolist()))
        codes.update(zip(LOWER_COLOURS, lower_codes[i].tolist()))
        decoded.append({name: codes[name] for name in ATTRIBUTE_NAMES})
    return decoded[0] if single else decoded


def decode_probabilities(probs: Any) -> list[dict[str, int]]:
    """A model's attribute outputs (N, 30) -> N dicts of the 27 Market codes: the one decoder that
    bench, training, predict and the ranked-list pictures share (`decode_predictions` on the head
    groups of `split_attributes`: age argmax, binary at 0.5, one colour per body half)."""
    parts = split_attributes(np.asarray(probs))
    decoded = decode_predictions(parts["age"], parts["binary"], parts["upper"], parts["lower"])
    return decoded if isinstance(decoded, list) else [decoded]


def codes_to_array(codes: Sequence[Mapping[str, int]]) -> np.ndarray:
    """Stack per-sample code dicts into an (N, 27) int64 array in `ATTRIBUTE_NAMES` order."""
    for i, sample in enumerate(codes):
        check_codes(sample, f"sample {i}")
    return np.array([[sample[name] for name in ATTRIBUTE_NAMES] for sample in codes], dtype=np.int64).reshape(
        len(codes), len(ATTRIBUTE_NAMES)
    )


def load_market_attributes(path: str | os.PathLike[str]) -> dict[str, dict[int, dict[str, int]]]:
    """Read the official `market_attribute.mat`: `{"train": {pid: {name: code}}, "test": {...}}`.

    `path` is the file or a folder holding it. Every field is read by name (train and test
    store them in different orders), and both shapes `scipy.io.loadmat` can return (records or
    `mat_struct` objects, squeezed or not) are accepted. Colours are taken as they are: a few
    ids mark no colour or several.
    """
    file = Path(path).expanduser()
    if file.is_dir() and (file / ATTRIBUTE_FILE).is_file():
        file = file / ATTRIBUTE_FILE
    if not file.is_file():
        found = "a folder without " + ATTRIBUTE_FILE if file.is_dir() else "nothing there"
        raise DataError(
            f"Market-1501 attribute file {file} not found: expected {ATTRIBUTE_FILE} from the "
            f"Market-1501_Attribute release, found {found}. Fix: pass the path of that file."
        )
    import scipy.io

    try:
        contents = scipy.io.loadmat(file, squeeze_me=True, struct_as_record=False, appendmat=False)
    except Exception as error:  # scipy raises several types for a file that is not a .mat
        raise DataError(
            f"Cannot read {file} as a MATLAB .mat file ({type(error).__name__}: {error}); expected "
            f"{ATTRIBUTE_FILE} from the Market-1501_Attribute release. Fix: download it again; "
            "the file may be truncated or of another format."
        ) from None
    if "market_attribute" not in contents:
        names = sorted(k for k in contents if not k.startswith("__"))
        raise DataError(
            f"{file} has no variable 'market_attribute': expected the official attribute file, "
            f"found variables {names}. Fix: pass {ATTRIBUTE_FILE} from Market-1501_Attribute."
        )
    top = _struct_fields(contents["market_attribute"])
    if top is None:
        raise DataError(f"'market_attribute' in {file} is not a struct; expected one with fields train and test.")
    missing = [split for split in ("train", "test") if split not in top]
    if missing:
        raise DataError(
            f"'market_attribute' in {file} has no field {' or '.join(missing)}: expected fields train "
            f"and test, found {sorted(top)}. Fix: pass the unmodified official file."
        )
    return {split: _read_split(file, split, top[split]) for split in ("train", "test")}


def test_split_labels(root: str | os.PathLike[str]) -> dict[int, dict[str, int]] | None:
    """{pid: 27 codes} of the test identities (distractors and junk left out) in ROOT/market_attribute.mat;
    None when the folder has no such file. The one place bench, training and pictures read them."""
    file = Path(root) / ATTRIBUTE_FILE
    if not file.is_file():
        return None
    return {pid: codes for pid, codes in load_market_attributes(file)["test"].items() if pid > 0} or None


def save_market_attributes(
    path: str | os.PathLike[str],
    attributes: Mapping[str, Mapping[int, Mapping[str, int]]],
    *,
    overwrite: bool = False,
) -> Path:
    """Write `{"train": {pid: codes}, "test": {...}}` in the official `market_attribute.mat` layout.

    Fields are 1 x N uint8 rows with `image_index` a 1 x N cell of 4-digit pid strings, ids in
    ascending order. Like the official file, train and test store their fields in different
    orders (train canonical, test reversed with `image_index` first). Refuses to replace an
    existing file unless `overwrite`.
    """
    file = Path(path).expanduser()
    if file.is_dir():
        raise DataError(f"Cannot write attributes to {file}: it is a folder. Fix: pass a file path ending in .mat.")
    if file.exists() and not overwrite:
        raise DataError(
            f"Refusing to overwrite {file}: it already exists. Fix: pass overwrite=True, or another path."
        )
    splits = set(attributes)
    if splits != {"train", "test"}:
        raise DataError(
            f"save_market_attributes expects exactly the splits 'train' and 'test', found {sorted(map(str, splits))}."
        )
    struct = {}
    for split, order in (("train", ATTRIBUTE_NAMES), ("test", ATTRIBUTE_NAMES[::-1])):
        for pid, codes in attributes[split].items():
            if isinstance(pid, bool) or not isinstance(pid, (int, np.integer)) or not 0 <= pid <= 9999:
                raise DataError(f"{split} person id {pid!r} cannot be written: expected an integer 0..9999 (4 digits).")
            check_codes(codes, f"{split} pid {pid:04d}")
        pids = sorted(attributes[split])
        fields = {"image_index": np.array([f"{pid:04d}" for pid in pids], dtype=object)}
        columns = {name: np.array([attributes[split][pid][name] for pid in pids], dtype=np.uint8) for name in order}
        struct[split] = {**columns, **fields} if split == "train" else {**fields, **columns}
    import scipy.io

    with atomic_path(file) as partial:  # never leave a half-written file under the real name
        with partial.open("wb") as handle:
            scipy.io.savemat(handle, {"market_attribute": struct})
            handle.seek(0)  # the 116-byte text header holds a creation time: fix it so equal data give equal bytes
            handle.write(_MAT_HEADER)
    return file


# -- helpers ---------------------------------------------------------------------------------

_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by reid-export".ljust(116, b" ")


def _allowed(name: str) -> str:
    return ", ".join(f"{code} ({meaning})" for code, meaning in ATTRIBUTE_CODES[name].items())


def _check_prediction_shapes(parts: list[np.ndarray]) -> None:
    expected = (NUM_AGE_CLASSES, NUM_BINARY, NUM_UPPER_COLOURS, NUM_LOWER_COLOURS)
    names = ("age_logits", "binary_probs", "upper_probs", "lower_probs")
    shapes = [a.shape for a in parts]
    leading = {shape[:-1] for shape in shapes}
    ok = (
        all(a.ndim in (1, 2) for a in parts)
        and len(leading) == 1
        and all(shape[-1] == n for shape, n in zip(shapes, expected))
        and (parts[0].ndim == 1 or parts[0].shape[0] > 0)
    )
    if not ok:
        want = ", ".join(f"{name} (N, {n}) or ({n},)" for name, n in zip(names, expected))
        got = ", ".join(f"{name} {shape}" for name, shape in zip(names, shapes))
        raise DataError(
            f"decode_predictions: expected {want} with the same N >= 1, found {got}. "
            "Fix: pass the four head outputs in this order, all for one sample or all for one batch."
        )
    if any(not np.isfinite(a).all() for a in parts):
        bad = [name for name, a in zip(names, parts) if not np.isfinite(a).all()]
        raise DataError(f"decode_predictions: {', '.join(bad)} hold NaN or inf; expected finite model outputs.")


def _colour_codes(scores: np.ndarray, one_hot: bool, threshold: float) -> np.ndarray:
    if not one_hot:
        return np.where(scores >= threshold, 2, 1)
    codes = np.ones(scores.shape, dtype=np.int64)
    codes[np.arange(scores.shape[0]), scores.argmax(axis=1)] = 2
    return codes


def _unwrap(obj: Any) -> Any:
    """Peel the 1 x 1 object / record arrays `loadmat` wraps cells and structs in."""
    while isinstance(obj, np.ndarray) and obj.size == 1 and (obj.dtype == object or obj.dtype.names):
        obj = obj.reshape(-1)[0]
    return obj


def _struct_fields(obj: Any) -> dict[str, Any] | None:
    """Field name -> value of a MATLAB struct as `loadmat` returns it in either mode, else None."""
    obj = _unwrap(obj)
    if hasattr(obj, "_fieldnames"):  # struct_as_record=False
        return {name: getattr(obj, name) for name in obj._fieldnames}
    if isinstance(obj, np.void) and obj.dtype.names:  # struct_as_record=True, after _unwrap
        return {name: obj[name] for name in obj.dtype.names}
    if isinstance(obj, Mapping):
        return dict(obj)
    return None


def _read_split(file: Path, split: str, obj: Any) -> dict[int, dict[str, int]]:
    where = f"market_attribute.{split} in {file}"
    fields = _struct_fields(obj)
    if fields is None:
        raise DataError(f"{where} is not a struct; expected one with the 27 attribute fields and image_index.")
    missing = [name for name in ATTRIBUTE_NAMES + ("image_index",) if name not in fields]
    if missing:
        raise DataError(
            f"{where} lacks field(s) {', '.join(missing)}; expected the 27 attributes and image_index, "
            f"found {', '.join(fields) or 'no fields'}. Fix: pass the unmodified official {ATTRIBUTE_FILE}."
        )
    pids = _read_pids(where, fields["image_index"])
    labels = {pid: {} for pid in pids}
    for name in ATTRIBUTE_NAMES:
        values = _read_labels(where, name, fields[name], pids)
        for pid, value in zip(pids, values):
            labels[pid][name] = value
    return labels


def _read_pids(where: str, value: Any) -> list[int]:
    value = _unwrap(value)
    items = [value] if isinstance(value, str) else np.asarray(value, dtype=object).reshape(-1).tolist()
    pids = []
    for i, item in enumerate(items):
        item = _unwrap(item)
        if isinstance(item, np.ndarray):  # a char row, e.g. array(['0002'])
            item = "".join(str(x) for x in item.reshape(-1))
        text = str(item).strip()
        if isinstance(item, (float, np.floating)) and float(item).is_integer():
            text = str(int(item))
        if not text.isdigit():
            raise DataError(
                f"{where}: image_index entry {i} is {item!r}; expected a person id such as '0002'."
            )
        pids.append(int(text))
    seen, repeated = set(), []
    for pid in pids:
        if pid in seen:
            repeated.append(pid)
        seen.add(pid)
    if repeated:
        raise DataError(
            f"{where}: image_index lists pid(s) {sorted(set(repeated))} more than once; expected each id once."
        )
    return pids


def _read_labels(where: str, name: str, value: Any, pids: list[int]) -> list[int]:
    array = np.asarray(_unwrap(value))
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"{where}: field {name!r} holds {array.dtype} values; expected integer codes {_allowed(name)}.")
    array = array.reshape(-1)
    if array.size != len(pids):
        raise DataError(
            f"{where}: field {name!r} has {array.size} labels but image_index has {len(pids)} ids; "
            "expected one label per id. Fix: pass the unmodified official file."
        )
    allowed = np.array(list(ATTRIBUTE_CODES[name]))
    good = np.isin(array, allowed)
    if not good.all():
        bad = np.flatnonzero(~good)
        first = int(bad[0])
        raise DataError(
            f"{where}: field {name!r} has code {array[first].item()!r} for pid {pids[first]:04d} "
            f"({bad.size} out-of-range value(s) in this field); expected one of {_allowed(name)}."
        )
    return [int(v) for v in array]
