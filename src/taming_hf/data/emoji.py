"""The emoji dataset: captioned colour emoji (Noto and Twemoji) as a `datasets.DatasetDict`.

    from taming_hf import load_emoji_dataset

    emoji = load_emoji_dataset()                       # DatasetDict: train / test
    test = load_emoji_dataset("test", resolution=32)   # one split, resized
    python -m taming_hf.data.emoji                     # build (or check) the cache from the command line

Sources, each a pinned npm package fetched with `npm pack NAME@VERSION` and checked against the sha512 integrity
the registry publishes (kept below):

- `emoji-datasource-google@16.0.0` / `emoji-datasource-twitter@16.0.0`: `img/<style>/64/*.png` (64 x 64 RGBA, 3,786
  per style: 1,911 emoji and their skin-tone variants) and `emoji.json` (category, subcategory, skin variations).
  Noto Emoji images are Apache-2.0, Twemoji images CC-BY-4.0; the Apple and Facebook sets are left out (not openly
  licensed).
- `emojibase-data@16.0.3` (`en/data.json`, MIT, CLDR annotations, Emoji 16.0): the captions (`label`, e.g.
  "grinning face with big eyes", skin tones as "thumbs up: medium skin tone") and keywords (`tags`). Debian's
  `unicode-cldr-core` (CLDR 41) stops at Emoji 14.0 and would leave the newer emoji without words.

Images are composited on white and stored as RGB PNGs; below 64 px they are resized with Lanczos after compositing.
There is no upscaling: Debian's `fonts-noto-color-emoji` (2.042) lacks Emoji 15.1 / 16.0 and draws one style only,
so resolutions above 64 are an error rather than a silently different dataset.

The held-out `test` split holds about 10% of the base emoji, chosen by a salted SHA-256 of each base emoji's code
points (`emoji_id`), so every style and skin tone of one emoji falls on the same side and the split does not move
when emoji are added or another machine builds it.

The built dataset is cached with `save_to_disk` under `cache_dir` (default `$HF_DATASETS_CACHE/taming_hf/emoji`),
in a folder named after the source versions, styles and resolution, with a dataset card as its README.md.
"""

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import PIL.Image
from datasets import Dataset, DatasetDict, Features, Image, Value, load_from_disk
from datasets import List as ListFeature
from datasets import config as datasets_config


class EmojiSourceError(RuntimeError):
    """An emoji source could not be fetched, or a fetched one is not the pinned package."""


@dataclass(frozen=True)
class NpmSource:
    """A pinned npm package: its name, version and the hashes `npm pack` prints for its tarball."""

    name: str
    version: str
    shasum: str  # sha1 of the tarball, hex
    integrity: str  # "sha512-<base64>", the registry's integrity field
    license: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.tgz"


IMAGE_SOURCES: Dict[str, NpmSource] = {
    "google": NpmSource(
        "emoji-datasource-google",
        "16.0.0",
        "a80ac3e8106cbd4d8648ce758aa099e8827b6157",
        "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
        "Apache-2.0 (Noto Emoji images); MIT (emoji.json)",
    ),
    "twitter": NpmSource(
        "emoji-datasource-twitter",
        "16.0.0",
        "e2bd39a8acb77e158106f8249dd7b4cd93fa1b14",
        "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==",
        "CC-BY-4.0 (Twemoji images); MIT (emoji.json)",
    ),
}
CAPTION_SOURCE = NpmSource(
    "emojibase-data",
    "16.0.3",
    "564ddfe11a2fdcba24975335f857dc85ee895027",
    "sha512-MopInVCDZeXvqBMPJxnvYUyKw9ImJZqIDr2sABo6acVSPev5IDYX+mf+0tsu96JJyc3INNvgIf06Eso7bdTX2Q==",
    "MIT (annotations from Unicode CLDR, Unicode License v3)",
)
STYLES = tuple(IMAGE_SOURCES)
SPLITS = ("train", "test")
NATIVE_RESOLUTION = 64
TEST_FRACTION = 0.1
SPLIT_SALT = "taming_hf/emoji/test-split"
# Bump when the rows a given set of sources produces change, so older caches are rebuilt.
CACHE_FORMAT = 1
INSTALL_NPM = "Install npm (`apt-get install npm`, or Node.js from https://nodejs.org, which bundles it)"
FEATURES = Features(
    {
        "image": Image(),
        "text": Value("string"),
        "keywords": ListFeature(Value("string")),
        "style": Value("string"),
        "category": Value("string"),
        "subcategory": Value("string"),
        "emoji_id": Value("string"),
        "unified": Value("string"),
    }
)


def default_cache_dir() -> str:
    return os.path.join(datasets_config.HF_DATASETS_CACHE, "taming_hf", "emoji")


# ----------------------------------------------------------------------------------------------------------------
# Sources: fetch, verify, read


def verify_tarball(path: str, source: NpmSource) -> None:
    """Raise `EmojiSourceError` unless the file at `path` has the sha512 integrity and sha1 shasum of `source`."""
    sha512, sha1 = hashlib.sha512(), hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha512.update(block)
            sha1.update(block)
    integrity = "sha512-" + base64.b64encode(sha512.digest()).decode()
    if integrity != source.integrity or sha1.hexdigest() != source.shasum:
        raise EmojiSourceError(
            f"{path} is not {source.spec}: its sha512 integrity is {integrity}, expected {source.integrity}. "
            "Delete it to fetch the package again."
        )


def npm_pack(source: NpmSource, destination: str) -> str:
    """Fetch `source`'s tarball into `destination` with `npm pack` (nothing is installed); returns its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise EmojiSourceError(
            f"npm is needed to fetch {source.spec} for the emoji dataset but is not on PATH. {INSTALL_NPM}, "
            f"or pass sources_dir= a folder holding the already-fetched tarballs ({source.filename}, ...)."
        )
    os.makedirs(destination, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination, prefix=".npm-pack-") as tmp:
        command = [npm, "pack", source.spec, "--pack-destination", tmp, "--json", "--loglevel", "error"]
        result = subprocess.run(command, capture_output=True, text=True)
        fetched = os.path.join(tmp, source.filename)
        if result.returncode != 0 or not os.path.isfile(fetched):
            raise EmojiSourceError(
                f"`npm pack {source.spec}` failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}"
            )
        verify_tarball(fetched, source)
        target = os.path.join(destination, source.filename)
        os.replace(fetched, target)
    return target


def locate_source(source: NpmSource, cache_dir: str, sources_dir: Optional[str] = None) -> str:
    """
    The verified tarball of `source`: from `sources_dir` when given (never fetched then), else from
    `<cache_dir>/sources`, fetched there with npm when absent.
    """
    if sources_dir is not None:
        path = os.path.join(sources_dir, source.filename)
        if not os.path.isfile(path):
            raise EmojiSourceError(
                f"{source.filename} not found in sources_dir {sources_dir!r}; fetch it there with "
                f"`npm pack {source.spec}`, or leave sources_dir unset to let the loader fetch it."
            )
    else:
        path = os.path.join(cache_dir, "sources", source.filename)
        if not os.path.isfile(path):
            path = npm_pack(source, os.path.dirname(path))
    verify_tarball(path, source)
    return path


def _check_member_path(name: str, tarball: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(parts[0]) >= 2 and parts[0][1] == ":") or ".." in parts:
        raise EmojiSourceError(f"{tarball} has a member with an unsafe path {name!r} (absolute or with '..').")


def read_tarball_members(tarball: str, wanted: Callable[[str], bool]) -> Dict[str, bytes]:
    """
    The contents of the regular files of a .tgz whose member name satisfies `wanted`, read into memory (nothing is
    written to disk). A member with an absolute or `..` path is an error, wanted or not.
    """
    contents = {}
    with tarfile.open(tarball, mode="r|gz") as archive:
        for member in archive:
            _check_member_path(member.name, tarball)
            if member.isfile() and wanted(member.name):
                contents[member.name] = archive.extractfile(member).read()
    return contents


def read_json_member(tarball: str, name: str):
    members = read_tarball_members(tarball, lambda member: member == name)
    if name not in members:
        raise EmojiSourceError(f"{tarball} has no {name}.")
    return json.loads(members[name])


# ----------------------------------------------------------------------------------------------------------------
# Rows: captions, keywords, split


def _normalize_code(code: str) -> str:
    """Code points without variation selector 16 (emojibase drops FE0F where emoji-datasource keeps it)."""
    return "-".join(part for part in code.upper().split("-") if part != "FE0F")


# CLDR names of the skin-tone modifiers.
SKIN_TONES = {
    "1F3FB": "light skin tone",
    "1F3FC": "medium-light skin tone",
    "1F3FD": "medium skin tone",
    "1F3FE": "medium-dark skin tone",
    "1F3FF": "dark skin tone",
}


def _skin_label(label: str, base_label: str, hexcode: str) -> str:
    """A skin variant's label; emojibase 16.0.3 gives some (the "facing right" people) only the base label, so the
    tones are added the way CLDR writes them ("person walking facing right: light skin tone")."""
    if label != base_label:
        return label
    tones = dict.fromkeys(SKIN_TONES[code] for code in hexcode.upper().split("-") if code in SKIN_TONES)
    return f"{label}: {', '.join(tones)}" if tones else label


def caption_index(emojibase_data: List[dict]) -> Dict[str, Tuple[str, List[str]]]:
    """emojibase `en/data.json` -> {normalized code points: (label, tags)}; skin tones carry their base's tags."""
    index = {}
    for entry in emojibase_data:
        tags = list(entry.get("tags") or [])
        index[_normalize_code(entry["hexcode"])] = (entry["label"], tags)
        for skin in entry.get("skins") or []:
            label = _skin_label(skin["label"], entry["label"], skin["hexcode"])
            index[_normalize_code(skin["hexcode"])] = (label, tags)
    return index


def split_of(emoji_id: str) -> str:
    """'test' for about `TEST_FRACTION` of base emoji ids, 'train' for the rest; the same on every machine."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{_normalize_code(emoji_id)}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") < TEST_FRACTION * 2**64 else "train"


def emoji_records(emoji_json: List[dict], captions: Dict[str, Tuple[str, List[str]]]) -> List[dict]:
    """
    One record per image (base emoji and each skin-tone variant) in emoji-datasource's sort order. An emoji
    emojibase has no words for falls back to its Unicode name in lower case.
    """
    records = []
    for entry in sorted(emoji_json, key=lambda entry: entry["sort_order"]):
        variants = [entry] + [entry["skin_variations"][key] for key in sorted(entry.get("skin_variations") or {})]
        for variant in variants:
            fallback = (entry["name"].lower(), [name.replace("_", " ") for name in entry.get("short_names", [])])
            text, keywords = captions.get(_normalize_code(variant["unified"]), fallback)
            records.append(
                {
                    "file": variant["image"],
                    "text": text,
                    "keywords": keywords,
                    "category": entry["category"],
                    "subcategory": entry["subcategory"],
                    "emoji_id": entry["unified"],
                    "unified": variant["unified"],
                }
            )
    return records


def composite_on_white(image: PIL.Image.Image, resolution: int = NATIVE_RESOLUTION) -> PIL.Image.Image:
    """Any-mode image -> RGB on a white background, resized (Lanczos, after compositing) to `resolution`."""
    rgba = image.convert("RGBA")
    white = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = PIL.Image.alpha_composite(white, rgba).convert("RGB")
    if rgb.size != (resolution, resolution):
        rgb = rgb.resize((resolution, resolution), PIL.Image.Resampling.LANCZOS)
    return rgb


# ----------------------------------------------------------------------------------------------------------------
# Building and caching


def check_styles(styles: Union[str, Iterable[str]]) -> Tuple[str, ...]:
    """Validated styles in canonical order (so ("twitter", "google") and ("google", "twitter") share a cache)."""
    styles = (styles,) if isinstance(styles, str) else tuple(styles)
    unknown = [style for style in styles if style not in STYLES]
    if unknown or not styles:
        raise ValueError(
            f"Unknown emoji styles {unknown or list(styles)}; expected a non-empty selection of {list(STYLES)} "
            "(the Apple and Facebook images are not openly licensed)."
        )
    return tuple(style for style in STYLES if style in styles)


def check_resolution(resolution) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer of at most {NATIVE_RESOLUTION}, got {resolution!r}.")
    if resolution > NATIVE_RESOLUTION:
        raise ValueError(
            f"resolution {resolution} is above the sources' native {NATIVE_RESOLUTION} px; the emoji dataset does "
            f"not upscale (Debian's fonts-noto-color-emoji lacks Emoji 15.1 / 16.0 and draws only the google "
            f"style). Load it at {NATIVE_RESOLUTION} or less and resize in your transform."
        )
    return resolution


def check_split(split: Optional[str]) -> Optional[str]:
    if split is not None and split not in SPLITS:
        raise ValueError(f"Unknown split {split!r} for the emoji dataset; expected None (both), 'train' or 'test'.")
    return split


def cache_key(styles: Sequence[str], resolution: int) -> str:
    """Folder name of one build: source versions, styles, resolution, cache format."""
    images = "+".join(f"{style}-{IMAGE_SOURCES[style].version}" for style in styles)
    return f"{images}_{CAPTION_SOURCE.name}-{CAPTION_SOURCE.version}_{resolution}px_v{CACHE_FORMAT}"


def build_emoji_dataset(tarballs: Dict[str, str], styles: Sequence[str], resolution: int) -> DatasetDict:
    """
    The dataset from verified tarballs ({style: path, ..., "captions": path}): rows grouped by style, in
    emoji-datasource's sort order, split by `split_of(emoji_id)`.
    """
    captions = caption_index(read_json_member(tarballs["captions"], "package/en/data.json"))
    rows = {split: {name: [] for name in FEATURES} for split in SPLITS}
    for style in styles:
        prefix = f"package/img/{style}/{NATIVE_RESOLUTION}/"
        members = read_tarball_members(
            tarballs[style], lambda name, prefix=prefix: name == "package/emoji.json" or name.startswith(prefix)
        )
        if "package/emoji.json" not in members:
            raise EmojiSourceError(f"{tarballs[style]} has no package/emoji.json.")
        for record in emoji_records(json.loads(members["package/emoji.json"]), captions):
            data = members.get(prefix + record["file"])
            if data is None:
                raise EmojiSourceError(f"{tarballs[style]} has no {prefix + record['file']} for {record['text']!r}.")
            image = composite_on_white(PIL.Image.open(io.BytesIO(data)), resolution)
            columns = rows[split_of(record["emoji_id"])]
            for name, value in (("image", image), ("style", style)) + tuple(record.items()):
                if name in columns:
                    columns[name].append(value)
    return DatasetDict({split: Dataset.from_dict(rows[split], features=FEATURES) for split in SPLITS})


def load_emoji_dataset(
    split: Optional[str] = None,
    resolution: int = NATIVE_RESOLUTION,
    styles: Union[str, Sequence[str]] = STYLES,
    cache_dir: Optional[str] = None,
    sources_dir: Optional[str] = None,
) -> Union[Dataset, DatasetDict]:
    """
    The captioned emoji dataset, built once and then loaded from its Arrow cache.

    Columns: `image` (`Image`, RGB, `resolution` x `resolution`, composited on white), `text` (CLDR name:
    "grinning face with big eyes", "thumbs up: medium skin tone"), `keywords` (list of CLDR keywords), `style`
    ("google" | "twitter"), `category`, `subcategory` (emoji-datasource's), `emoji_id` (code points of the base
    emoji, shared by its skin tones and styles: the split key), `unified` (code points of this image's emoji).

    Args:
        split: "train", "test", or None for a `DatasetDict` with both.
        resolution: image side, 1 to 64 (native 64; smaller sizes are Lanczos-resized).
        styles: image sets to include, a subset of ("google", "twitter").
        cache_dir: where the tarballs (`sources/`) and built datasets live; default
            `$HF_DATASETS_CACHE/taming_hf/emoji`.
        sources_dir: a folder holding the already-fetched tarballs (`npm pack NAME@VERSION`); npm is not used then.

    Returns:
        `datasets.Dataset` for one split, else `datasets.DatasetDict` with "train" and "test".
    """
    split = check_split(split)
    resolution = check_resolution(resolution)
    styles = check_styles(styles)
    cache_dir = cache_dir or default_cache_dir()
    folder = os.path.join(cache_dir, cache_key(styles, resolution))
    if not os.path.isfile(os.path.join(folder, "dataset_dict.json")):
        _build_cache(folder, styles, resolution, cache_dir, sources_dir)
    dataset = load_from_disk(folder)
    return dataset if split is None else dataset[split]


def _build_cache(folder: str, styles, resolution: int, cache_dir: str, sources_dir: Optional[str]) -> None:
    """Build into a temporary folder and rename it into place, so a crash never leaves a half-written cache."""
    sources = {style: IMAGE_SOURCES[style] for style in styles}
    sources["captions"] = CAPTION_SOURCE
    tarballs = {key: locate_source(source, cache_dir, sources_dir) for key, source in sources.items()}
    dataset = build_emoji_dataset(tarballs, styles, resolution)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=cache_dir, prefix=f".{os.path.basename(folder)}-")
    try:
        dataset.save_to_disk(tmp)
        with open(os.path.join(tmp, "README.md"), "w") as f:
            f.write(dataset_card(dataset, styles, resolution))
        try:
            os.replace(tmp, folder)
        except OSError:
            if not os.path.isfile(os.path.join(folder, "dataset_dict.json")):
                raise  # not another process finishing the same build first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# Dataset card

_ATTRIBUTION = """\
- **Twemoji** (style `twitter`): graphics Copyright 2019 Twitter, Inc and other contributors, from the maintained
  fork https://github.com/jdecked/twemoji (v16.0.1), licensed under CC-BY 4.0
  (https://creativecommons.org/licenses/by/4.0/); taken from the npm package emoji-datasource-twitter@16.0.0.
  Changes made here: composited on a white background, converted to RGB, resized when the resolution is below 64.
- **Noto Emoji** (style `google`): by Google, https://github.com/googlefonts/noto-emoji (v2.048), Apache License
  2.0; taken from the npm package emoji-datasource-google@16.0.0, with the same changes.
- **emoji.json** (categories, subcategories, skin variations): emoji-datasource, Copyright (c) 2013 Cal Henderson,
  MIT.
- **Captions and keywords**: emojibase-data@16.0.3, Copyright (c) 2017-2019 Miles Johnson, MIT; its English labels
  and tags come from the Unicode CLDR annotations (Unicode License v3)."""


EXAMPLE_TEXTS = ("grinning face with big eyes", "thumbs up: medium skin tone", "red heart", "flag: Japan", "cat face")


def dataset_card(dataset: DatasetDict, styles: Sequence[str], resolution: int) -> str:
    """Markdown card: sources, licences and attribution, counts per split and style, the split, columns, examples."""
    lines = [
        "# emoji (taming_hf)",
        "",
        f"Captioned colour emoji, {resolution} x {resolution} RGB on white, styles {', '.join(styles)}. Built by "
        "`taming_hf.load_emoji_dataset` (rebuild: `python -m taming_hf.data.emoji"
        + (f" --resolution {resolution}" if resolution != NATIVE_RESOLUTION else "")
        + (f" --styles {' '.join(styles)}" if tuple(styles) != STYLES else "")
        + "`).",
        "",
        "## Sources",
        "",
        "| npm package | sha1 (`npm pack` shasum) | licence | taken |",
        "|---|---|---|---|",
    ]
    for style in styles:
        source = IMAGE_SOURCES[style]
        lines.append(
            f"| {source.spec} | `{source.shasum}` | {source.license} | "
            f"`package/img/{style}/64/*.png`, `package/emoji.json` |"
        )
    lines += [
        f"| {CAPTION_SOURCE.spec} | `{CAPTION_SOURCE.shasum}` | {CAPTION_SOURCE.license} | `package/en/data.json` |",
        "",
        "Each tarball is checked against the registry's sha512 integrity (kept in `taming_hf/data/emoji.py`). The "
        "Apple and Facebook image sets of emoji-datasource are left out: they are not openly licensed.",
        "",
        "Some emoji share one picture, as their sources draw them: territories that fly another flag (Heard & "
        "McDonald Islands as Australia, Bouvet Island and Svalbard as Norway, Clipperton and St. Martin as France, "
        "Diego Garcia as the British Indian Ocean Territory, Ceuta & Melilla as Spain, the U.S. Outlying Islands as "
        "the United States) and the family emoji. One is a defect of emoji-datasource-google@16.0.0: its `flag: Sark` "
        "(`1f1e8-1f1f6.png`, in `test`) is the Saudi Arabia flag, byte for byte; Twemoji draws Sark's own. The row "
        "is kept so that figures measured on the split stay comparable; its google image is mislabelled.",
        "",
        "## Licences and attribution",
        "",
        _ATTRIBUTION,
        "",
        "## Splits",
        "",
        f"`test` holds the base emoji whose salted SHA-256 (`sha256('{SPLIT_SALT}:' + emoji_id)`, first 8 bytes, "
        f"big-endian) is below {TEST_FRACTION:.0%} of 2**64; `train` the rest. All styles and skin tones of a base "
        "emoji are on the same side, so test captions name emoji a model never saw. The split depends only on each "
        "id, not on the machine or the set of emoji.",
        "",
        "| split | base emoji | " + " | ".join(f"{style} images" for style in styles) + " | images |",
        "|---|---|" + "---|" * len(styles) + "---|",
    ]
    for split in SPLITS:
        part = dataset[split]
        counts = {style: 0 for style in styles}
        for style in part["style"]:
            counts[style] += 1
        cells = " | ".join(str(counts[style]) for style in styles)
        lines.append(f"| {split} | {len(set(part['emoji_id']))} | {cells} | {len(part)} |")
    lines += [
        "",
        "## Columns",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
        f"| `image` | `Image` | {resolution} x {resolution} RGB PNG, RGBA composited on white"
        + (", Lanczos-resized from 64 px" if resolution != NATIVE_RESOLUTION else "")
        + " |",
        "| `text` | string | CLDR name in plain words; skin tones as CLDR writes them (`thumbs up: medium skin tone`) |",
        "| `keywords` | list of strings | CLDR keywords of the base emoji (emojibase `tags`) |",
        "| `style` | string | image set: `google` (Noto) or `twitter` (Twemoji) |",
        "| `category`, `subcategory` | string | emoji-datasource's (Unicode's groups and subgroups) |",
        "| `emoji_id` | string | code points of the base emoji (emoji-datasource `unified`): the split key |",
        "| `unified` | string | code points of this image's emoji (the skin-tone variant's own) |",
        "",
        "## Examples",
        "",
        "| split | text | keywords | style | category / subcategory | emoji_id | unified |",
        "|---|---|---|---|---|---|---|",
    ]
    for split in SPLITS:
        part = dataset[split].select_columns([name for name in FEATURES if name != "image"])
        texts = part["text"]
        for text in EXAMPLE_TEXTS:
            if text in texts:
                row = part[texts.index(text)]
                lines.append(
                    f"| {split} | {row['text']} | {', '.join(row['keywords'])} | {row['style']} | "
                    f"{row['category']} / {row['subcategory']} | {row['emoji_id']} | {row['unified']} |"
                )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Command line


def parse_args(input_args=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Build (or check) the emoji dataset's Arrow cache.")
    parser.add_argument("--resolution", type=int, default=NATIVE_RESOLUTION, help="Image side, 1 to 64.")
    parser.add_argument("--styles", nargs="+", default=list(STYLES), help=f"A subset of {list(STYLES)}.")
    parser.add_argument("--cache_dir", type=str, default=None, help="Default: $HF_DATASETS_CACHE/taming_hf/emoji.")
    parser.add_argument("--sources_dir", type=str, default=None, help="A folder of already-fetched tarballs.")
    return parser.parse_args(input_args)


def main(args: argparse.Namespace) -> DatasetDict:
    start = time.time()
    dataset = load_emoji_dataset(None, args.resolution, args.styles, args.cache_dir, args.sources_dir)
    styles = check_styles(args.styles)
    folder = os.path.join(args.cache_dir or default_cache_dir(), cache_key(styles, args.resolution))
    counts = ", ".join(f"{split}: {len(dataset[split])} images" for split in SPLITS)
    print(f"emoji dataset at {folder} ({counts}) in {time.time() - start:.1f} s")
    return dataset


if __name__ == "__main__":
    main(parse_args())
