"""The original implementation is a test dependency: missing, it fails under CI and skips elsewhere."""

import pytest

from original_taming import INSTALL_COMMAND, OriginalTamingMissing, import_original_taming, require_original_taming

MISSING = "taming.no_such_module"


def test_missing_original_names_the_install_command():
    with pytest.raises(OriginalTamingMissing, match="install it with: pip install --no-deps"):
        import_original_taming(MISSING)


def test_missing_original_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=INSTALL_COMMAND.replace("(", r"\(").replace(".", r"\.")):
        require_original_taming(MISSING)


def test_missing_original_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="The original implementation is not installed"):
        require_original_taming(MISSING)


def test_other_import_errors_are_not_hidden():
    with pytest.raises(ModuleNotFoundError) as info:
        import_original_taming("no_such_top_level_module")
    assert not isinstance(info.value, OriginalTamingMissing)


def test_installed_original_imports():
    module = require_original_taming("taming.modules.vqvae.quantize")
    assert hasattr(module, "VectorQuantizer2")
