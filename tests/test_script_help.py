"""Every flag of the command-line scripts has help text, and the training scripts agree on their defaults (CPU, no
model is built or trained: the parsers are captured as the scripts' `parse_args` builds them)."""

import argparse
import functools
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    path.stem
    for path in (REPO / "scripts").glob("*.py")
    if "def parse_args(input_args=None)" in path.read_text(encoding="utf-8")
)
OPTIONAL_IMPORTS = {"demo": "gradio"}  # the demo extra
TRAINING_SCRIPTS = ("train_vqgan", "train_transformer", "train_clip")


@functools.cache
def load_script(name):
    """A script as a module, loaded by path (as tests/test_script_input_errors.py does), once per session."""
    if name in OPTIONAL_IMPORTS:
        pytest.importorskip(OPTIONAL_IMPORTS[name])
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__("parser captured")
        self.parser = parser


def script_parser(name, monkeypatch) -> argparse.ArgumentParser:
    """The parser the script's `parse_args` builds, caught at its `parser.parse_args` (nothing is parsed or run)."""
    module = load_script(name)

    def capture(self, args=None, namespace=None):
        raise Captured(self)

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", capture)
        with pytest.raises(Captured) as raised:
            module.parse_args([])
    return raised.value.parser


def is_help_flag(action: argparse.Action) -> bool:
    return isinstance(action, argparse._HelpAction)


def test_the_scripts_are_found():
    assert {"train_vqgan", "train_transformer", "train_clip", "evaluate", "sample", "vqgan_clip"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_flag_has_help(name, monkeypatch):
    parser = script_parser(name, monkeypatch)
    actions = [action for action in parser._actions if not is_help_flag(action)]
    assert actions, f"scripts/{name}.py: the captured parser has no flags"
    missing = [
        "/".join(action.option_strings) or action.dest
        for action in actions
        if action.help is None or action.help == argparse.SUPPRESS or not str(action.help).strip()
    ]
    assert not missing, f"scripts/{name}.py: flags without help text: {', '.join(missing)}"
    parser.format_help()  # every help string formats (a stray '%' would raise here)


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_flag_prints_usage_and_exits(name, capsys):
    module = load_script(name)
    with pytest.raises(SystemExit) as raised:
        module.parse_args(["--help"])
    assert raised.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("name", TRAINING_SCRIPTS)
def test_training_scripts_share_seed_and_report_to_defaults(name, monkeypatch, tmp_path):
    parser = script_parser(name, monkeypatch)
    assert (parser.get_default("seed"), parser.get_default("report_to")) == (42, "none"), f"scripts/{name}.py"
    # The same through the script's own parse_args, with its minimal required arguments.
    argv = ["--dataset_name", "unused"]
    if name == "train_transformer":
        argv += ["--vqgan_model_name_or_path", str(tmp_path)]
    args = load_script(name).parse_args(argv)
    assert (args.seed, args.report_to) == (42, "none"), f"scripts/{name}.py"
