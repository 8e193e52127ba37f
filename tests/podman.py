"""A private podman for tests: its own store, a busybox image built locally, the Docker-compatible API.

Everything lives in one folder (store, run root, engine temp folder with file locks, the API
socket), so the tests never see or touch another podman's containers, and no registry is used:
the image is ``FROM scratch`` with a copy of the host's static busybox.

The engine settings are the ones that work on a host with hybrid cgroups, as root: runc (crun
fails there), cgroupfs, no network, explicit ulimits (podman's default RLIMIT_NOFILE is refused).

Use it from a fixture::

    try:
        service = PodmanService(tmp_path_factory.mktemp("podman")).start()
    except PodmanUnavailable as exc:
        pytest.skip(str(exc))
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["IMAGE", "PodmanService", "PodmanUnavailable"]

#: The test image (built locally, never pulled).
IMAGE = "localhost/faultcat-busybox:test"
#: busybox applets linked in the image's /bin.
APPLETS = ("sh", "ps", "sleep", "echo", "cat", "true", "false", "kill")

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
tmp_dir = "{tmp_dir}"
# Exec sessions made through the API keep a conmon for this long (default 300 s).
exit_command_delay = 1
"""


class PodmanUnavailable(RuntimeError):
    """podman is not installed or cannot run a container here (the message says why)."""


class PodmanService:
    """A private podman and its Docker-compatible API on a unix socket in ``folder``.

    :param folder: an empty folder for the store, the configuration, the socket and the logs.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).resolve()
        self.socket = self.folder / "podman.sock"
        self.conf = self.folder / "containers.conf"
        # podman refuses a run root longer than 50 characters (pytest-xdist's folders are longer).
        self.runroot = self.folder / "run"
        self._own_runroot = len(str(self.runroot)) > 50
        if self._own_runroot:
            self.runroot = Path(tempfile.mkdtemp(prefix="fcpm-"))
        self.proc: subprocess.Popen | None = None
        self.started: list[str] = []
        self._binary = shutil.which("podman")

    @property
    def base_url(self) -> str:
        """The API's URL, e.g. ``unix:///tmp/.../podman.sock``."""
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def _argv(self, *args: str) -> list[str]:
        return [
            self._binary or "podman",
            "--root",
            str(self.folder / "root"),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "vfs",
            *args,
        ]

    def podman(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the podman CLI on this store; raise ``RuntimeError`` with its stderr if it fails."""
        done = subprocess.run(
            self._argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
        return done

    def _build_image(self) -> None:
        if self.podman("image", "exists", IMAGE, check=False).returncode == 0:
            return
        busybox = shutil.which("busybox")
        if not busybox:
            raise PodmanUnavailable("busybox is not installed (apt-get install busybox-static)")
        context = self.folder / "image"
        bin_dir = context / "root" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(busybox, bin_dir / "busybox")
        for applet in APPLETS:
            (bin_dir / applet).unlink(missing_ok=True)
            (bin_dir / applet).symlink_to("busybox")
        (context / "Containerfile").write_text("FROM scratch\nCOPY root/ /\n")
        self.podman("build", "-q", "-t", IMAGE, str(context))

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect(str(self.socket))
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
                answer = sock.recv(4096)
        except OSError:
            return False
        return answer.startswith(b"HTTP/1.") and answer.rstrip().endswith(b"OK")

    def start(self, timeout: float = 20) -> PodmanService:
        """Build the image if missing, check that a container runs, start the API and wait for it.

        :raises PodmanUnavailable: podman (or busybox) is missing or cannot run a container here.
        """
        if not self._binary:
            raise PodmanUnavailable("podman is not installed (apt-get install podman runc)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(CONTAINERS_CONF.format(tmp_dir=self.folder / "tmp"))
        try:
            self._build_image()
            self.podman("run", "--rm", IMAGE, "true", timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            raise PodmanUnavailable(f"podman cannot run a container here: {exc}") from exc
        log = (self.folder / "service.log").open("ab")
        self.proc = subprocess.Popen(
            self._argv("system", "service", "--time=0", self.base_url),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ping():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise PodmanUnavailable(
            f"podman system service on {self.socket} did not answer GET /_ping within {timeout} s "
            f"(see {self.folder / 'service.log'})"
        )

    def run(self, name: str, *command: str, restart: str | None = None) -> str:
        """Start a detached container ``name`` of the test image; its id."""
        args = ["run", "-d", "--name", name]
        if restart:
            args.append(f"--restart={restart}")
        self.started.append(name)
        return self.podman(*args, IMAGE, *command).stdout.strip()

    def wait_state(self, name: str, state: str, timeout: float = 30) -> None:
        """Wait until container ``name`` reports ``state`` (podman passes through "stopped" on its
        way to "exited" while it cleans up, longer on a busy machine).

        :raises TimeoutError: if it does not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            seen = self.podman("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
            if seen == state:
                return
            time.sleep(0.1)
        raise TimeoutError(f"container {name} is {seen!r}, not {state!r}, after {timeout} s")

    def rm(self, *names: str) -> None:
        """Remove containers (running or not) at once."""
        if names:
            self.podman("rm", "-f", "-t", "0", "--ignore", *names, check=False)
        self.started = [name for name in self.started if name not in names]

    def _lingering(self) -> bool:
        """Whether a process of this store still runs (conmon of an exec session, its cleanup)."""
        marker = str(self.runroot).encode()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if marker in cmdline.read_bytes():
                    return True
            except OSError:
                continue
        return False

    def stop(self, timeout: float = 10) -> None:
        """Remove every container it started, stop the API service, wait for the exec sessions."""
        self.rm(*self.started)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        # An exec session's conmon ends exit_command_delay seconds after the exec.
        deadline = time.monotonic() + timeout
        while self._lingering() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self._own_runroot:
            shutil.rmtree(self.runroot, ignore_errors=True)

    def __enter__(self) -> PodmanService:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
