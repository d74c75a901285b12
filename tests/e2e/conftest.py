"""Fixtures of the Strata end-to-end suite.

Every test talks to the real ``strata`` binary (``$STRATA_BIN``, default
``target/debug/strata``), started on port 0 with a temporary data directory.
Nodes are shared per module where possible; tests keep out of each other's way
by using a unique tenant each (the ``tenant`` fixture).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import _RUNNING, STRATA_BIN, NodeError, StrataNode, unique_tenant  # noqa: F401

# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def strata_bin() -> str:
    assert os.path.isfile(STRATA_BIN) and os.access(STRATA_BIN, os.X_OK), (
        f"strata binary not found at {STRATA_BIN}; build it with `cargo build -p strata-server` "
        "or set STRATA_BIN"
    )
    return STRATA_BIN


class NodeFactory:
    """Starts nodes and stops them all (each with a required clean exit) at teardown."""

    def __init__(self, base: Path):
        self.base = base
        self.nodes: list[StrataNode] = []
        self._n = 0

    def start(self, *extra_args: str, data_dir: Path | None = None) -> StrataNode:
        self._n += 1
        node = StrataNode(data_dir or (self.base / f"node{self._n}" / "data"), list(extra_args), name=f"node{self._n}")
        self.nodes.append(node)
        return node.start()

    def stop_all(self) -> None:
        errors = []
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.stop_clean()
                except AssertionError as e:  # keep stopping the others
                    errors.append(str(e))
        if errors:
            raise NodeError("\n\n".join(errors))


@pytest.fixture(scope="module")
def module_nodes(strata_bin, tmp_path_factory):
    factory = NodeFactory(tmp_path_factory.mktemp("strata"))
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def node(module_nodes) -> StrataNode:
    """A node shared by the tests of one module (1 s flush interval)."""
    return module_nodes.start()


@pytest.fixture
def node_factory(strata_bin, tmp_path):
    """Starts extra nodes for one test; each must exit cleanly on SIGTERM at teardown."""
    factory = NodeFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture
def tenant(request) -> str:
    """A tenant id unique to this test."""
    return unique_tenant(request.node.name)


@pytest.fixture
def sql(node, tenant):
    """``node.sql`` bound to this test's tenant: ``sql("SELECT ...")`` or ``sql(q, tenant=other)``."""

    def run(query: str, tenant: str | None = tenant) -> list[dict]:
        return node.sql(query, tenant=tenant)

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _RUNNING:
        for n in list(_RUNNING):
            report.sections.append((f"strata stderr ({n.name}, {n.log_path}) last 60 lines", n.stderr_text(tail=60)))
