"""Where test nodes keep their files and their catalog: the storage and catalog under test.

``STRATA_E2E_STORAGE`` picks the object store of every node the fixtures start:

* ``local`` (default): ``<data-dir>/objects``, the binary's default;
* ``s3``: a bucket of its own per node on a moto server (``STRATA_E2E_S3_ENDPOINT`` when
  set, else one started for the session through ``scripts/services.sh``), passed as
  ``--storage s3://<bucket>/strata`` with the ``AWS_*`` environment object_store reads.

``STRATA_E2E_CATALOG`` picks the catalog:

* ``sqlite`` (default): ``<data-dir>/catalog.db``, the binary's default;
* ``postgres``: a fresh database per node on the server that ``STRATA_TEST_POSTGRES_URL``
  names (an admin URL: any database on a server where that user may create databases), else
  on one started for the session through ``scripts/services.sh``.

Tests never look at ``<data-dir>/objects`` directly: they read through an
:class:`ObjectStoreView` of the node (``objects_of(node)``, ``parquet_keys(node, ...)``), which
is the local directory or the S3 bucket, whichever the node writes to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_SH = REPO_ROOT / "scripts" / "services.sh"

STORAGE_MODES = ("local", "s3")
CATALOG_MODES = ("sqlite", "postgres")
STORAGE_MODE = os.environ.get("STRATA_E2E_STORAGE", "local") or "local"
CATALOG_MODE = os.environ.get("STRATA_E2E_CATALOG", "sqlite") or "sqlite"
if STORAGE_MODE not in STORAGE_MODES:
    raise RuntimeError(f"STRATA_E2E_STORAGE={STORAGE_MODE!r}: use one of {STORAGE_MODES}")
if CATALOG_MODE not in CATALOG_MODES:
    raise RuntimeError(f"STRATA_E2E_CATALOG={CATALOG_MODE!r}: use one of {CATALOG_MODES}")

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
# moto does not verify signatures, but it answers an anonymous GetObject on a private bucket
# with 403: a request that carries any SigV4 Authorization header is served.
MOTO_AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request, "
                              "SignedHeaders=host, Signature=0"}
HTTP_TIMEOUT_S = 30


# ---------------------------------------------------------------------- object store views


class ObjectStoreView:
    """Read access to the objects a node wrote, with keys relative to its storage root."""

    def keys(self, prefix: str = "") -> list[str]:
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        raise NotImplementedError

    def url_of(self, key: str = "") -> str:
        """How a user names the object (or the root, for ``""``) outside Strata: a path or URL."""
        raise NotImplementedError


class LocalObjects(ObjectStoreView):
    def __init__(self, root: Path):
        self.root = Path(root)

    def keys(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        return sorted(
            k for p in self.root.rglob("*") if p.is_file() and (k := p.relative_to(self.root).as_posix()).startswith(prefix)
        )

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def url_of(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def __repr__(self) -> str:
        return f"LocalObjects({self.root})"


class S3Objects(ObjectStoreView):
    """A bucket (and key prefix) on moto, read with plain HTTP (see ``MOTO_AUTH``)."""

    def __init__(self, endpoint: str, bucket: str, prefix: str = ""):
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def keys(self, prefix: str = "") -> list[str]:
        full_prefix = self._full(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        out: list[str] = []
        token = None
        while True:
            params = {"list-type": "2", "prefix": full_prefix}
            if token:
                params["continuation-token"] = token
            r = requests.get(f"{self.endpoint}/{self.bucket}", params=params, headers=MOTO_AUTH,
                             timeout=HTTP_TIMEOUT_S)
            assert r.status_code == 200, (r.status_code, r.text[:500])
            root = ET.fromstring(r.content)
            for c in root.iter(f"{S3_NS}Contents"):
                key = c.find(f"{S3_NS}Key").text
                out.append(key[len(self.prefix) + 1:] if self.prefix else key)
            if root.findtext(f"{S3_NS}IsTruncated") == "true":
                token = root.findtext(f"{S3_NS}NextContinuationToken")
            else:
                return sorted(out)

    def read(self, key: str) -> bytes:
        r = requests.get(f"{self.endpoint}/{self.bucket}/{quote(self._full(key))}", headers=MOTO_AUTH,
                         timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 200, (key, r.status_code, r.text[:500])
        return r.content

    def url_of(self, key: str = "") -> str:
        base = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"{base}/{key}" if key else base

    def __repr__(self) -> str:
        return f"S3Objects({self.endpoint}, {self.url_of()})"


def objects_of(node) -> ObjectStoreView:
    """The object store of a node: what the fixtures gave it, else its local default."""
    view = getattr(node, "objects", None)
    return view if view is not None else LocalObjects(Path(node.data_dir) / "objects")


def parquet_keys(node, tenant: str | None = None, signal_name: str | None = None) -> list[str]:
    """Keys (relative to the storage root) of the node's Parquet files, optionally of one
    tenant and signal: ``tenant=t/signal=logs/date=2024-01-15/hour=10/<uuid>.parquet``."""
    prefix = ""
    if tenant is not None:
        prefix = f"tenant={tenant}/"
        if signal_name is not None:
            prefix += f"signal={signal_name}/"
    return [k for k in objects_of(node).keys(prefix) if k.endswith(".parquet")]


# ---------------------------------------------------------------------- services


def services_sh(*args: str) -> str:
    """Runs ``scripts/services.sh`` and returns its stdout (the service URL for a start)."""
    r = subprocess.run([str(SERVICES_SH), *args], capture_output=True, text=True, timeout=180)
    if r.returncode != 0:
        raise RuntimeError(f"scripts/services.sh {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout.strip()


def service_dir(label: str) -> Path:
    """A directory for a service's files whose parents the ``postgres`` user can traverse."""
    base = Path(tempfile.mkdtemp(prefix=f"strata-{label}-"))
    base.chmod(0o755)
    return base


class Moto:
    """An S3 server: moto in server mode, given by URL or started (and stopped) here."""

    def __init__(self, endpoint: str, directory: Path | None = None):
        self.endpoint = endpoint.rstrip("/")
        self._dir = directory

    @classmethod
    def start(cls) -> "Moto":
        d = service_dir("moto")
        return cls(services_sh("start-moto", "0", str(d / "s")), d)

    def stop(self) -> None:
        if self._dir is not None:
            services_sh("stop-moto", str(self._dir / "s"))
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def started_here(self) -> bool:
        return self._dir is not None

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"strata-e2e-{uuid.uuid4().hex[:16]}"
        r = requests.put(f"{self.endpoint}/{name}", timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 200, (r.status_code, r.text[:500])
        return name

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """What object_store's S3 client reads (``AmazonS3Builder::from_env``)."""
        return {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }


class Postgres:
    """A PostgreSQL server reached through an admin URL; given, or started (and stopped) here."""

    def __init__(self, admin_url: str, directory: Path | None = None):
        self.admin_url = admin_url
        self._dir = directory
        self.created: list[str] = []

    @classmethod
    def start(cls) -> "Postgres":
        d = service_dir("pg")
        return cls(services_sh("start-postgres", "0", str(d / "s")), d)

    def stop(self) -> None:
        if self._dir is not None:
            services_sh("stop-postgres", str(self._dir / "s"))
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def url_of(self, database: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))

    def psql(self, sql: str, url: str | None = None) -> list[list[str]]:
        """Runs SQL with psql; returns the rows of the last statement as lists of text."""
        r = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", url or self.admin_url, "-c", sql],
            capture_output=True, text=True, timeout=60,
        )
        if r.returncode != 0:
            raise AssertionError(f"psql failed ({r.returncode}) on {sql!r}: {r.stderr}")
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def create_database(self, label: str = "node") -> str:
        """A fresh database; returns its URL."""
        clean = "".join(c if c.isalnum() else "_" for c in label.lower())[:30]
        name = f"strata_e2e_{clean}_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url_of(name)

    def drop_created(self) -> None:
        """Drops the databases made by :meth:`create_database` (best effort)."""
        for name in self.created:
            try:
                self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except AssertionError:
                pass
        self.created.clear()


class Backends:
    """The session's S3 and PostgreSQL servers, each started on first use."""

    def __init__(self):
        self._moto: Moto | None = None
        self._postgres: Postgres | None = None

    @property
    def moto(self) -> Moto:
        if self._moto is None:
            given = os.environ.get("STRATA_E2E_S3_ENDPOINT")
            self._moto = Moto(given) if given else Moto.start()
        return self._moto

    @property
    def postgres(self) -> Postgres:
        if self._postgres is None:
            given = os.environ.get("STRATA_TEST_POSTGRES_URL")
            self._postgres = Postgres(given) if given else Postgres.start()
        return self._postgres

    def close(self) -> None:
        if self._postgres is not None:
            self._postgres.drop_created()
            self._postgres.stop()
        if self._moto is not None:
            self._moto.stop()

    def describe(self) -> str:
        storage = STORAGE_MODE + (" (moto: STRATA_E2E_S3_ENDPOINT or started on first use)" if STORAGE_MODE == "s3" else "")
        catalog = CATALOG_MODE + (" (STRATA_TEST_POSTGRES_URL or started on first use)" if CATALOG_MODE == "postgres" else "")
        return f"strata e2e: storage={storage}, catalog={catalog}"


def node_backend(backends: Backends, extra_args: list[str], label: str) -> tuple[list[str], dict[str, str], ObjectStoreView | None]:
    """The flags, environment and object store view that put a new node on the storage and
    catalog under test (unless its flags already name them)."""
    args: list[str] = []
    env: dict[str, str] = {}
    objects: ObjectStoreView | None = None
    if "--storage" in extra_args:
        url = extra_args[extra_args.index("--storage") + 1]
        if url.startswith("file://"):
            objects = LocalObjects(Path(urlsplit(url).path))
    elif STORAGE_MODE == "s3":
        moto = backends.moto
        bucket = moto.create_bucket()
        args += ["--storage", f"s3://{bucket}/strata"]
        env.update(moto.env())
        objects = S3Objects(moto.endpoint, bucket, "strata")
    if "--catalog" not in extra_args and CATALOG_MODE == "postgres":
        args += ["--catalog", backends.postgres.create_database(label)]
    return args, env, objects
