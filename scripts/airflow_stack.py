"""Start and stop a loopback-only Airflow 3 stack for the demo and the integration tests.

The components are started one by one, never with ``airflow standalone`` (which opens log servers
on every interface): ``api-server --host 127.0.0.1``, ``scheduler --skip-serve-logs``,
``dag-processor`` and ``triggerer --skip-serve-logs``, with the LocalExecutor, low parallelism,
SQLite in ``AIRFLOW_HOME`` unless ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` says otherwise, and the
SimpleAuthManager with one generated user. The faultcat REST API connection
(``faultcat_api_default``) and the opt-in listener are configured through the environment.

Usage from Python::

    with AirflowStack(home) as stack:
        stack.api.trigger_dag_run(...)

or ``python scripts/airflow_stack.py start|stop|status --home DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
USER = "faultcat"
COMPONENTS = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def local_postgres(name: str) -> str | None:
    """Create a fresh database on the PostgreSQL at 127.0.0.1:5432 (trust auth); None if unreachable.

    :param name: the database to (re)create.
    :return: its SQLAlchemy URL for Airflow.
    """
    try:
        import psycopg2
    except ImportError:
        return None
    try:
        conn = psycopg2.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3
        )
    except psycopg2.Error:
        return None
    conn.autocommit = True
    with conn.cursor() as cur:
        # A stack killed earlier may still hold sessions: they end with the database.
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1, which a test may stop and restart.

    It keeps an append-only file in ``folder``, as a production Redis should: a restart keeps the
    guardrails' state (claims, budgets, open escalations).

    :param folder: its working folder (log file).
    :param port: the port (default: a free one).
    """

    def __init__(self, folder: str | Path, port: int | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        import redis

        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server is not installed (make setup installs it)")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def stop(self) -> None:
        """Stop it (its data stays in the append-only file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class AirflowStack:
    """A real Airflow 3 stack bound to 127.0.0.1, its state in ``home``.

    It comes with its own Redis (``redis_default``, the guardrails' store) on a free port, so that
    a test can stop it without touching any other Redis on the machine.

    :param home: AIRFLOW_HOME (created; its settings file ``stack.json`` keeps port and secrets so
        that ``stop`` and a second process can find the stack).
    :param dags_folder: the DAGs folder (default: the repository's ``dags/``).
    :param extra_env: more environment for every component.
    :param db_url: the metadata database; default ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` if set,
        else SQLite in ``home``.
    :param celery_workers: with a number, the CeleryExecutor (broker: the stack's Redis, database 2;
        results: the metadata database, which must be PostgreSQL) and that many workers. Each worker
        runs in its own mount namespace with a private tmpfs over ``home/private``: its own
        ``AIRFLOW_HOME``, evidence folder and spool, invisible to the other components, as on
        separate machines; the task log folder, the database and the broker are shared. Each
        reports its own host name (``w1``, ``w2``...) through ``[core] hostname_callable``.
    :param celery_queues: the queues of each worker, in order (comma separated; default: the
        default queue).
    """

    def __init__(
        self,
        home: str | Path,
        dags_folder: str | Path | None = None,
        extra_env: dict | None = None,
        db_url: str | None = None,
        celery_workers: int = 0,
        celery_queues: list[str] | None = None,
    ):
        self.home = Path(home).resolve()
        self.db_url = db_url or os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        self.dags_folder = Path(dags_folder or ROOT / "dags").resolve()
        self.extra_env = dict(extra_env or {})
        self.state_file = self.home / "stack.json"
        self.logs = self.home / "stack-logs"
        self.procs: dict[str, subprocess.Popen] = {}
        if self.state_file.exists():
            self.state = json.loads(self.state_file.read_text())
        else:
            self.state = {
                "port": free_port(),
                "password": secrets.token_urlsafe(16),
                "jwt_secret": secrets.token_urlsafe(64),
                "secret_key": secrets.token_urlsafe(32),
                "redis_port": free_port(),
            }
        self.redis = RedisServer(self.home / "redis", port=int(self.state.get("redis_port") or free_port()))
        self.celery_workers = celery_workers
        self.celery_queues = list(celery_queues or [])
        if celery_workers and self.uses_sqlite:
            raise ValueError("the CeleryExecutor stack needs PostgreSQL (its result backend)")

    # -- configuration ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self.state["port"])

    @property
    def uses_sqlite(self) -> bool:
        """Whether the metadata database is SQLite (one writer at a time)."""
        return not self.db_url or self.db_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def password(self) -> str:
        return self.state["password"]

    @property
    def airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def env(self) -> dict[str, str]:
        """The environment every component (and the CLI) runs with."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AIRFLOW__") and not k.startswith("AIRFLOW_CONN_")
        }
        # Keep a database the caller chose (PostgreSQL in CI, for instance).
        db = self.db_url
        sqlite = not db or db.startswith("sqlite")
        conn_uri = f"faultcat-api://{USER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__SECRET_KEY": self.state["secret_key"],
                "AIRFLOW__API_AUTH__JWT_SECRET": self.state["jwt_secret"],
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db or f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__MAX_DAGRUNS_TO_CREATE_PER_LOOP": "20",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__FAULTCAT__LISTENER_ENABLED": "True",
                "AIRFLOW_CONN_FAULTCAT_API_DEFAULT": conn_uri,
                "AIRFLOW_CONN_REDIS_DEFAULT": self.redis.url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if sqlite:
            # Five processes share one SQLite file: wait for a lock instead of failing (the
            # scheduler exits on "database is locked"); the module lives in AIRFLOW_HOME.
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.home), env.get("PYTHONPATH", "")) if p)
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "faultcat_stack_db.CONNECT_ARGS"
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] = "faultcat_stack_db.CONNECT_ARGS"
        if self.celery_workers:
            broker = self.redis.url.rsplit("/", 1)[0] + "/2"
            results = (db or "").replace("postgresql+psycopg2://", "postgresql://", 1)
            env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                    "AIRFLOW__CELERY__BROKER_URL": broker,
                    "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + results,
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
                }
            )
        extra = dict(self.extra_env)
        if "PYTHONPATH" in extra:
            extra["PYTHONPATH"] = os.pathsep.join(
                p for p in (extra["PYTHONPATH"], env.get("PYTHONPATH")) if p
            )
        env.update(extra)
        return env

    def run_cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run an ``airflow`` CLI command against this stack."""
        return subprocess.run(
            [self.airflow, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 180) -> None:
        """Migrate the database and start the four components; wait until the API answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.state_file.write_text(json.dumps(self.state))
        (self.home / "passwords.json").write_text(json.dumps({USER: self.password}))
        (self.home / "faultcat_stack_db.py").write_text("CONNECT_ARGS = {'timeout': 15}\n")
        if not self.redis.running:
            self.redis.start()
        migrate = self.run_cli("db", "migrate", timeout=600)
        if migrate.returncode:
            raise RuntimeError(
                f"airflow db migrate failed:\n{migrate.stdout[-2000:]}\n{migrate.stderr[-4000:]}"
            )
        db_file = self.home / "airflow.db"
        if db_file.exists() and not self.db_url:
            # WAL lets readers go on while one process writes; the mode stays with the file.
            with sqlite3.connect(db_file) as db:
                db.execute("PRAGMA journal_mode=WAL")
        # Compile the pattern database once now, rather than in the first recovery runs at once.
        subprocess.run(
            [sys.executable, "-c", "from airflow_faultcat.core.diagnose import Analyzer; Analyzer()"],
            env=self.env(),
            check=False,
            timeout=300,
        )
        pids = {}
        for name, args in COMPONENTS.items():
            cmd = [self.airflow, *(a.format(port=self.port) for a in args)]
            log = (self.logs / f"{name}.log").open("ab")
            proc = subprocess.Popen(
                cmd,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
            )
            self.procs[name] = proc
            pids[name] = proc.pid
        for number in range(1, self.celery_workers + 1):
            name = f"worker-w{number}"
            proc = self._start_worker(number)
            self.procs[name] = proc
            pids[name] = proc.pid
        if self.redis.proc is not None:
            pids["redis"] = self.redis.proc.pid
        self.state["pids"] = pids
        self.state_file.write_text(json.dumps(self.state))
        self.wait_healthy(timeout)

    @property
    def private(self) -> Path:
        """The folder each Celery worker sees as its own (a tmpfs in its mount namespace)."""
        return self.home / "private"

    def _start_worker(self, number: int) -> subprocess.Popen:
        """One Celery worker in its own mount namespace: a private tmpfs over :attr:`private`."""
        self.private.mkdir(exist_ok=True)
        (self.home / "faultcat_stack_host.py").write_text(
            "import os\n\n\ndef name() -> str:\n"
            "    return os.environ.get('FAULTCAT_STACK_HOSTNAME', 'core')\n"
        )
        env = self.env()
        env.update(
            {
                "AIRFLOW_HOME": str(self.private / "home"),
                "AIRFLOW__FAULTCAT__EVIDENCE_PATH": f"file://{self.private / 'evidence'}",
                "AIRFLOW__FAULTCAT__SPOOL_DIR": str(self.private / "spool"),
                "FAULTCAT_STACK_HOSTNAME": f"w{number}",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "faultcat_stack_host.name",
                "PYTHONPATH": os.pathsep.join(p for p in (str(self.home), env.get("PYTHONPATH", "")) if p),
            }
        )
        script = (
            'mount -t tmpfs -o size=512m faultcat-private "$1" && mkdir -p "$1/home" && shift && exec "$@"'
        )
        cmd = [
            "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
            str(self.private), self.airflow, "celery", "worker", "--skip-serve-logs",
            "--celery-hostname", f"w{number}@%h", "--concurrency", "2",
        ]  # fmt: skip
        if number <= len(self.celery_queues):
            cmd += ["--queues", self.celery_queues[number - 1]]
        log = (self.logs / f"worker-w{number}.log").open("ab")
        return subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home, start_new_session=True
        )

    def wait_healthy(self, timeout: float = 180) -> None:
        """Wait until the API server answers and the scheduler and DAG processor report healthy.

        :raises RuntimeError: with the tail of each component's log when it does not come up.
        """
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                health = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=2).json()
                states = {k: (v or {}).get("status") for k, v in health.items()}
                if states.get("metadatabase") == "healthy" and states.get("scheduler") == "healthy":
                    if states.get("dag_processor", "healthy") == "healthy":
                        return
                last = str(states)
            except (httpx.HTTPError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.5)
        tails = "\n".join(f"--- {n}\n{self.log_tail(n)}" for n in COMPONENTS)
        raise RuntimeError(f"Airflow stack not healthy after {timeout} s ({last})\n{tails}")

    def assert_running(self) -> None:
        """Raise with the component's log tail when one of the components this stack started exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name, 60)}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop every component this stack started (whole process groups), then forget them."""
        pids = {name: proc.pid for name, proc in self.procs.items()} or self.state.get("pids", {})
        for pid in pids.values():
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 20
        for pid in pids.values():
            while time.monotonic() < deadline:
                try:
                    os.killpg(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
            else:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()
        self.redis.stop()
        self.state.pop("pids", None)
        if self.state_file.parent.exists():
            self.state_file.write_text(json.dumps(self.state))

    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for the demo and the tests ----------------------------------------------------
    def token(self) -> str:
        response = httpx.post(
            f"{self.base_url}/auth/token", json={"username": USER, "password": self.password}, timeout=10
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def client(self) -> httpx.Client:
        """An httpx client for the public REST API, authenticated as the stack's user."""
        return httpx.Client(
            base_url=f"{self.base_url}/api/v2",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--home", type=Path, default=ROOT / ".faultcat-demo" / "airflow")
    parser.add_argument("--clean", action="store_true", help="with start: remove an earlier home first")
    args = parser.parse_args()
    if args.action == "start" and args.clean and args.home.exists():
        shutil.rmtree(args.home)
    stack = AirflowStack(args.home)
    if args.action == "start":
        stack.start()
        print(f"Airflow is up at {stack.base_url} (user {USER}, password in {stack.home / 'passwords.json'})")
    elif args.action == "stop":
        stack.stop()
    else:
        try:
            print(httpx.get(f"{stack.base_url}/api/v2/monitor/health", timeout=2).text)
        except httpx.HTTPError as exc:
            print(f"not running: {exc}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
