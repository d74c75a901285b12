"""Fixtures of the Strata end-to-end suite.

Every test talks to the real ``strata`` binary (``$STRATA_BIN``, default
``target/debug/strata``), started on port 0 with a temporary data directory.
Nodes are shared per module where possible; tests keep out of each other's way
by using a unique tenant each (the ``tenant`` fixture).

The storage and catalog under test come from ``STRATA_E2E_STORAGE`` (``local`` | ``s3``) and
``STRATA_E2E_CATALOG`` (``sqlite`` | ``postgres``): see ``storage_backends.py``. Every node
started through ``node_factory`` / ``module_nodes`` (so also ``node``) gets its own bucket and
its own database in those modes; tests read its files through ``objects_of(node)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import _RUNNING, STRATA_BIN, NodeError, StrataNode, unique_tenant  # noqa: F401
from storage_backends import Backends, node_backend

# ---------------------------------------------------------------------- fixtures


_BACKENDS = Backends()


def pytest_report_header(config):
    return _BACKENDS.describe()


@pytest.fixture(scope="session")
def backends():
    """The session's S3 server (moto) and PostgreSQL server, each started on first use and
    stopped at the end of the session (unless given by STRATA_E2E_S3_ENDPOINT /
    STRATA_TEST_POSTGRES_URL)."""
    yield _BACKENDS
    _BACKENDS.close()


@pytest.fixture(scope="session")
def strata_bin() -> str:
    assert os.path.isfile(STRATA_BIN) and os.access(STRATA_BIN, os.X_OK), (
        f"strata binary not found at {STRATA_BIN}; build it with `cargo build -p strata-server` "
        "or set STRATA_BIN"
    )
    return STRATA_BIN


class NodeFactory:
    """Starts nodes and stops them all (each with a required clean exit) at teardown.

    Each node goes on the storage and catalog under test (a bucket and a database of its
    own) unless its flags name ``--storage`` / ``--catalog``; a node started again on the
    data directory of an earlier one gets that one's bucket and database back."""

    def __init__(self, base: Path, backends: Backends):
        self.base = base
        self.backends = backends
        self.nodes: list[StrataNode] = []
        self._n = 0
        self._by_data_dir: dict[Path, tuple[list[str], dict[str, str], object]] = {}

    def start(self, *extra_args: str, data_dir: Path | None = None, env: dict[str, str] | None = None,
              objects=None) -> StrataNode:
        """``env`` is added to the node's environment; ``objects`` (a storage_backends view)
        says where a node whose flags name ``--storage`` keeps its files."""
        self._n += 1
        data_dir = Path(data_dir or (self.base / f"node{self._n}" / "data"))
        if data_dir not in self._by_data_dir:
            self._by_data_dir[data_dir] = node_backend(self.backends, list(extra_args), f"node{self._n}")
        args, backend_env, backend_objects = self._by_data_dir[data_dir]
        node = StrataNode(data_dir, [*extra_args, *args], name=f"node{self._n}", env={**backend_env, **(env or {})})
        node.objects = objects or backend_objects
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
def module_nodes(strata_bin, tmp_path_factory, backends):
    factory = NodeFactory(tmp_path_factory.mktemp("strata"), backends)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def node(module_nodes) -> StrataNode:
    """A node shared by the tests of one module (1 s flush interval)."""
    return module_nodes.start()


@pytest.fixture
def node_factory(strata_bin, tmp_path, backends):
    """Starts extra nodes for one test; each must exit cleanly on SIGTERM at teardown."""
    factory = NodeFactory(tmp_path, backends)
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
