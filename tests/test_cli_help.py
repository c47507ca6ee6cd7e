"""``--help`` of every command, ``--version`` and the top-level help answer without importing torch
(the check is deterministic: torch must not be in ``sys.modules``; the wall time is printed)."""
import subprocess
import sys
import time

import pytest

from irkernels.models import MODEL_NAMES
from irkernels.pipeline import command_modules

COMMANDS = [m.NAME for m in command_modules()]
NO_TORCH = "import sys; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('irkernels'))"


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_imports_no_torch(command):
    code = (f"from irkernels.pipeline.__main__ import build_parser\n"
            f"parser, subs = build_parser(only={command!r})\n"
            f"text = subs[{command!r}].format_help()\n"
            f"assert '--' in text\n{NO_TORCH}")
    done = _python(code)
    assert done.returncode == 0, done.stderr
    start = time.perf_counter()
    shown = subprocess.run([sys.executable, "-m", "irkernels.pipeline", command, "--help"], capture_output=True,
                           text=True, timeout=120)
    print(f"{command} --help: {time.perf_counter() - start:.2f} s")
    assert shown.returncode == 0 and "usage: irkernels " + command in shown.stdout


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_top_level_help_import_no_torch(argv):
    code = (f"import sys\nfrom irkernels.pipeline.__main__ import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as exc:\n    assert exc.code in (0, None)\n{NO_TORCH}")
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert "irkernels" in done.stdout


def test_model_names_are_the_registry_keys():
    from irkernels.models import MODELS

    assert MODEL_NAMES == tuple(MODELS)


def test_config_modules_import_no_torch():
    done = _python("import irkernels.configs, irkernels.data.config, irkernels.idc.config, irkernels.tripled.config, "
                   f"irkernels.methods\n{NO_TORCH}")
    assert done.returncode == 0, done.stderr


def test_every_lazy_name_resolves_to_the_object_not_a_submodule():
    import importlib
    import types

    import irkernels.data.degrade  # noqa: F401  (imported first: the package attribute must stay the function)
    import irkernels.models.edsr  # noqa: F401

    for name in ("irkernels", "irkernels.data", "irkernels.models", "irkernels.idc", "irkernels.tripled"):
        package = importlib.import_module(name)
        for attr in package.__all__:
            value = getattr(package, attr)
            assert not isinstance(value, types.ModuleType), f"{name}.{attr} is a module"
    from irkernels.data import degrade
    from irkernels.models import edsr

    assert callable(degrade) and callable(edsr)
