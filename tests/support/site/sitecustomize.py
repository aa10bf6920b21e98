"""Loaded by Python at start-up when this directory is on PYTHONPATH: install the network
guard (tests/support/netguard.py) in subprocesses started by the tests."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_tickserver_netguard", Path(__file__).resolve().parent.parent / "netguard.py"
)
if _spec is not None and _spec.loader is not None:
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    _mod.install()
