from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True, scope="session")
def _compiled_pattern_cache(tmp_path_factory: pytest.TempPathFactory):
    # Keep the compiled-database cache of the tests out of the user's home.
    mp = pytest.MonkeyPatch()
    mp.setenv("FAULTCAT_CACHE_DIR", str(tmp_path_factory.mktemp("faultcat-cache")))
    mp.delenv("AIRFLOW__FAULTCAT__PATTERN_PATHS", raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def mini_library():
    from airflow_faultcat.core.patterns.loader import load_library

    return load_library([DATA / "patterns" / "mini.yaml"], include_builtin=False)


@pytest.fixture(scope="session", params=["hyperscan", "re2"])
def mini_analyzer(request, mini_library):
    from airflow_faultcat.core.diagnose import Analyzer

    return Analyzer(mini_library, engine=request.param)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A private redis-server on a free loopback port, for the guardrail tests."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from airflow_stack import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_conn(redis_server, monkeypatch):
    """``redis_default`` pointed at the private Redis, emptied first; yields the server."""
    import redis

    if not redis_server.running:
        redis_server.start()
    redis.Redis(port=redis_server.port).flushall()
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", redis_server.url)
    yield redis_server
