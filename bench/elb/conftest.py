"""Fixtures of the ELB benchmark: the lifecycle suite's (server, client, git_http), loaded from
tests/lifecycle/conftest.py so the benchmark runs exactly what the tests run."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "lifecycle_conftest", Path(__file__).resolve().parents[2] / "tests/lifecycle/conftest.py")
lifecycle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lifecycle)

# Everything (fixtures, client_for, make_repo, commit), as test_layers.py imports it from `conftest`.
globals().update({k: v for k, v in vars(lifecycle).items() if not k.startswith("__")})
