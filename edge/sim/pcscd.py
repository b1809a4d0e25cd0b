"""A private PC/SC stack: a real pcscd with the vpcd driver, started and stopped by us.

Tests and the demo need pcscd plus vpcd readers that no one else uses. Three facts shape this:

1. **The vpcd port comes from DEVICENAME.** pcscd calls the driver's
   ``IFDHCreateChannelByName(DEVICENAME)``; vpcd reads ``/dev/null:PORT`` (PORT parsed with
   ``strtoul(.., 0)``, so ``0x8C7B`` and ``35963`` both work) and listens on PORT for slot 0 and
   PORT+1 for slot 1. CHANNELID is not used when DEVICENAME is given. vpcd binds every interface
   (INADDR_ANY), so a free port means free on 0.0.0.0, for both PORT and PORT+1.
2. **Reader names are** ``"<FRIENDLYNAME> <reader index> <slot>"``, two hex digits each:
   ``"Virtual PCD 00 00"`` and ``"Virtual PCD 00 01"``. Slot *n* listens on ``vpcd_port + n``.
3. **The daemon's socket path is fixed** (``/run/pcscd/pcscd.comm``), while clients read
   ``PCSCLITE_CSOCK_NAME``. As root we run pcscd in a private mount namespace where our own
   directory is bind-mounted over /run/pcscd: its socket appears in our directory, and the stack
   collides with neither the system pcscd nor another test run. Without root (or without
   ``unshare``) we fall back to the system path, which must then be free.

libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per process, on the first PC/SC call, so a process
using pyscard must set it (to :attr:`PcscStack.socket_path`) before that call; child processes get
it from :attr:`PcscStack.env`. For the same reason our readiness check lists the readers from a
short-lived child process: the parent may not be wired to this stack (yet).

Usage::

    with PcscStack() as stack:
        os.environ["PCSCLITE_CSOCK_NAME"] = str(stack.socket_path)  # before pyscard's first call
        with VpcdClient(IsoCard(), port=stack.vpcd_port):
            ...  # stack.reader_names[0] holds the card
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = [
    "DEFAULT_FRIENDLY_NAME",
    "SYSTEM_SOCKET_DIR",
    "VPCD_DRIVER",
    "PcscStack",
    "PcscStackError",
]

SYSTEM_SOCKET_DIR = Path("/run/pcscd")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
DEFAULT_FRIENDLY_NAME = "Virtual PCD"

_INSTALL_HINT = "apt-get install pcscd vsmartcard-vpcd"
_SOCKET_NAME = "pcscd.comm"
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the NUL
_PORT_ATTEMPTS = 3  # another process may take our "free" port before vpcd binds it

# Run in a child so this process's libpcsclite stays unbound (it caches the socket path).
_LIST_READERS = """
import json, sys
from smartcard import scard
hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
if hr != scard.SCARD_S_SUCCESS:
    sys.exit("SCardEstablishContext: " + scard.SCardGetErrorMessage(hr))
hr, readers = scard.SCardListReaders(ctx, [])
scard.SCardReleaseContext(ctx)
if hr not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_NO_READERS_AVAILABLE):
    sys.exit("SCardListReaders: " + scard.SCardGetErrorMessage(hr))
print(json.dumps(list(readers) if hr == scard.SCARD_S_SUCCESS else []))
"""


class PcscStackError(RuntimeError):
    """The PC/SC stack could not start; the message says why and what to do."""


class PcscStack:
    """pcscd + vpcd on a private socket and free ports; a context manager.

    ``workdir`` holds the reader.conf.d, the pcscd log and (when isolated) the socket; by default
    a temporary directory, removed on :meth:`stop`. ``port`` fixes the first vpcd port (slot 1
    uses port + 1); by default a free pair is picked. ``isolate`` forces (True) or forbids (False)
    the private mount namespace; by default it is used when available. ``debug`` makes pcscd log
    every APDU to :attr:`log_path`.

    A stack starts once; after :meth:`stop`, make a new one.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        port: int | None = None,
        friendly_name: str = DEFAULT_FRIENDLY_NAME,
        isolate: bool | None = None,
        pcscd: str = "pcscd",
        driver: Path | str = VPCD_DRIVER,
        startup_timeout: float = 10.0,
        debug: bool = False,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = Path(
            tempfile.mkdtemp(prefix="borderlane-pcsc-") if workdir is None else workdir
        )
        self.friendly_name = friendly_name
        self.pcscd = pcscd
        self.driver = Path(driver)
        self.startup_timeout = startup_timeout
        self.debug = debug
        self._fixed_port = port
        self.isolated = _can_isolate() if isolate is None else isolate
        socket_dir = self.workdir / "run" if self.isolated else SYSTEM_SOCKET_DIR
        #: Where clients find pcscd; set PCSCLITE_CSOCK_NAME to it.
        self.socket_path = socket_dir / _SOCKET_NAME
        self.log_path = self.workdir / "pcscd.log"
        self.vpcd_port: int = port or 0
        self.reader_names: list[str] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._used = False

    # -- public ------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """This process's environment, pointed at this stack: pass it to child processes."""
        return {**os.environ, "PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    @property
    def pid(self) -> int | None:
        """pcscd's process id while running."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> PcscStack:
        """Start pcscd and return once a PC/SC client sees the vpcd readers."""
        if self._used:
            raise PcscStackError("a PcscStack starts once; create a new one")
        self._used = True
        try:
            self._preflight()
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                self.vpcd_port = self._fixed_port or _free_port_pair()
                self._launch()
                try:
                    self.reader_names = self._wait_until_ready()
                    return self
                except _PortTaken:
                    self._terminate()
                    if self._fixed_port is not None or attempt == _PORT_ATTEMPTS:
                        raise PcscStackError(
                            f"vpcd could not listen on port {self.vpcd_port} or "
                            f"{self.vpcd_port + 1}: {self._log_tail()}"
                        ) from None
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Terminate pcscd (its whole process group) and clean up; safe to call twice."""
        self._terminate()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PcscStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<PcscStack {state} socket={self.socket_path} vpcd_port={self.vpcd_port}>"

    # -- steps -------------------------------------------------------------------------------

    def _preflight(self) -> None:
        # /usr/sbin is often missing from a normal user's PATH on Debian
        found = shutil.which(self.pcscd) or shutil.which(self.pcscd, path="/usr/sbin:/sbin")
        if found is None:
            raise PcscStackError(f"pcscd not installed ({self.pcscd} not found): {_INSTALL_HINT}")
        self.pcscd = found
        if not self.driver.exists():
            raise PcscStackError(f"vpcd driver not installed ({self.driver}): {_INSTALL_HINT}")
        if len(os.fsencode(self.socket_path)) > _SUN_PATH_MAX:
            raise PcscStackError(
                f"socket path {self.socket_path} is too long for a unix socket; "
                "use a shorter workdir"
            )
        if not self.isolated and _socket_answers(self.socket_path):
            raise PcscStackError(
                f"a pcscd already serves {self.socket_path} and this stack is not isolated "
                "(a private pcscd needs root and `unshare --mount`); stop that pcscd "
                "(systemctl stop pcscd.socket pcscd.service) or run as root"
            )

    def _launch(self) -> None:
        conf_dir = self.workdir / "reader.conf.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        # DEVICENAME carries the port (see module docstring); CHANNELID only documents it.
        (conf_dir / "vpcd").write_text(
            f'FRIENDLYNAME "{self.friendly_name}"\n'
            f"DEVICENAME   /dev/null:{self.vpcd_port}\n"
            f"LIBPATH      {self.driver}\n"
            f"CHANNELID    {self.vpcd_port}\n"
        )
        pcscd = [self.pcscd, "--foreground", "--config", str(conf_dir)]
        pcscd += ["--debug", "--apdu"] if self.debug else ["--info"]
        # Parent-death signal: a test run killed with SIGKILL takes its pcscd along. It fires when
        # the *thread* that started us exits, so start stacks from a long-lived thread.
        if shutil.which("setpriv"):
            pcscd = ["setpriv", "--pdeathsig", "TERM", "--", *pcscd]
        if self.isolated:
            run_dir = self.socket_path.parent
            run_dir.mkdir(parents=True, exist_ok=True)
            script = (
                f"mkdir -p {SYSTEM_SOCKET_DIR} && "
                f"mount --bind {shlex.quote(str(run_dir))} {SYSTEM_SOCKET_DIR} && "
                f"exec {shlex.join(pcscd)}"
            )
            # unshare and sh exec in place, so the pid we hold is pcscd's
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        else:
            command = pcscd
        with self.log_path.open("wb") as log:  # one log per attempt
            # A file, not a pipe: nobody drains a pipe, and a full one would block pcscd.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_until_ready(self) -> list[str]:
        """The socket answers, then a client lists our readers.

        pcscd loads the reader.conf.d readers before it creates its socket, so once the socket
        answers, the reader list is final: no polling for readers is needed.
        """
        deadline = time.monotonic() + self.startup_timeout
        while not _socket_answers(self.socket_path):
            self._check_alive()
            if time.monotonic() > deadline:
                raise PcscStackError(
                    f"pcscd did not open {self.socket_path} within {self.startup_timeout}s: "
                    f"{self._log_tail()}"
                )
            time.sleep(0.01)
        readers = self._list_readers(deadline)
        ours = sorted(
            (r for r in readers if r.startswith(self.friendly_name + " ")),
            key=lambda name: name.rsplit(" ", 1)[-1],
        )
        if not ours:
            self._check_alive()
            if b"Could not initialize connection to virtual ICC" in self._log_bytes():
                raise _PortTaken
            raise PcscStackError(
                f"pcscd started but lists no {self.friendly_name!r} reader (readers: {readers}): "
                f"{self._log_tail()}"
            )
        return ours

    def _list_readers(self, deadline: float) -> list[str]:
        try:
            result = subprocess.run(
                [sys.executable, "-c", _LIST_READERS],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PcscStackError(f"listing readers timed out: {self._log_tail()}") from None
        if result.returncode != 0:
            raise PcscStackError(
                f"a PC/SC client could not list readers ({result.stderr.strip()[-500:]}); "
                f"pcscd log: {self._log_tail()}"
            )
        readers: list[str] = json.loads(result.stdout)
        return readers

    def _check_alive(self) -> None:
        assert self._process is not None
        code = self._process.poll()
        if code is not None:
            self._process = None
            raise PcscStackError(f"pcscd exited with status {code}: {self._log_tail()}")

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)  # start_new_session made pcscd a group leader
            try:
                process.wait(grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def _log_bytes(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except OSError:
            return b""

    def _log_tail(self, lines: int = 15) -> str:
        tail = self._log_bytes().decode(errors="replace").strip().splitlines()[-lines:]
        return ("\n" + "\n".join(tail)) if tail else "(pcscd logged nothing)"


class _PortTaken(Exception):
    """vpcd could not bind its port; retry with another."""


def _can_isolate() -> bool:
    """True if we may run pcscd in a private mount namespace (root, unshare permitted)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def _socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def _port_free(port: int) -> bool:
    # vpcd binds 0.0.0.0 (with SO_REUSEADDR); binding the same way without it is stricter
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _free_port_pair() -> int:
    """A port p such that p and p+1 are both free (vpcd's two slots)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("0.0.0.0", 0))
            port: int = probe.getsockname()[1]
        if port < 0xFFFF and _port_free(port) and _port_free(port + 1):
            return port
    raise PcscStackError("found no two consecutive free TCP ports for vpcd")
