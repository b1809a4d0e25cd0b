"""Network partitions made of real network namespaces, for the chaos tests.

A :class:`Namespace` is a network namespace joined to the host's by a veth pair: the host end
has ``host_ip``, the namespace end ``ns_ip`` (a /30 of its own). A process started with
:meth:`Namespace.command` runs inside it and reaches the host (a broker bound to ``host_ip``)
only over that pair::

    with namespace(subnet) as ns:                       # made here, deleted at the end
        kiosk = subprocess.Popen(ns.command([sys.executable, "-m", ...]))
        ns.partition()                                  # the cable is cut: packets vanish
        ns.heal()                                       # and it is back

A partition drops every packet at the namespace's veth, both ways, with an nftables ``netdev``
table (ingress and egress hooks). Nothing is refused or reset: no RST, no ICMP, no error to
either side's socket. Exactly what a cut cable or a dead mobile link does, so each side can
only notice by its keepalive. No process is killed and neither TCP connection is closed.

It needs root, ``ip`` (iproute2) and ``nft`` (nftables), both installed by
``scripts/system-packages.sh``. Without them :func:`namespace` raises :class:`NetnsError`: the
tests that use it fail, loudly, instead of skipping.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Namespace", "NetnsError", "free_subnet", "namespace"]


class NetnsError(Exception):
    """A namespace, a veth pair or a partition could not be made (the message says why)."""


def _run(*argv: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(argv)}: {exc}") from None
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def check_tools() -> None:
    """Raise :class:`NetnsError` unless we are root and have ``ip`` and ``nft``."""
    if os.geteuid() != 0:
        raise NetnsError("network namespaces need root (the chaos tests run as root in CI)")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            raise NetnsError(f"{tool} not found; run `make system-packages` as root")


def free_subnet() -> ipaddress.IPv4Network:
    """A /30 in 10.200.0.0/13 that no interface of the host uses (chosen at random, so two
    test sessions on one machine do not collide)."""
    used = _run("ip", "-o", "-4", "addr", "show")
    for _ in range(100):
        subnet = ipaddress.IPv4Network((0x0AC8_0000 + random.randrange(0, 1 << 17) * 4, 30))
        if f" {subnet[1]}/" not in used and f" {subnet[2]}/" not in used:
            return subnet
    raise NetnsError("no free /30 found in 10.200.0.0/13")


@dataclass(frozen=True)
class Namespace:
    """A network namespace joined to the host by a veth pair; see the module documentation."""

    name: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str

    def command(self, argv: list[str]) -> list[str]:
        """*argv* as run inside the namespace (``ip netns exec``)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def partition(self) -> None:
        """Drop every packet on the namespace's link, both ways, silently."""
        rules = (
            "table netdev partition {\n"
            f'  chain in {{ type filter hook ingress device "{self.ns_if}" priority -500; '
            "policy drop; }\n"
            f'  chain out {{ type filter hook egress device "{self.ns_if}" priority -500; '
            "policy drop; }\n"
            "}\n"
        )
        _run(*self.command(["nft", "-f", "-"]), stdin=rules)

    def heal(self) -> None:
        """Let packets through again (the TCP connections, if still open, carry on)."""
        _run(*self.command(["nft", "delete", "table", "netdev", "partition"]))

    @property
    def partitioned(self) -> bool:
        return "partition" in _run(*self.command(["nft", "list", "tables"]))


@contextlib.contextmanager
def namespace(subnet: ipaddress.IPv4Network, tag: str = "t") -> Iterator[Namespace]:
    """A namespace on *subnet* (host end ``.1``, namespace end ``.2``) for the block; the
    namespace, its veth pair and any partition are gone afterwards, whatever happened.

    Processes started inside it must be ended by the caller before the block ends (a process
    keeps a deleted namespace alive, unreachable)."""
    check_tools()
    suffix = f"{os.getpid() % 100000}{tag}{random.randrange(1000)}"
    ns = Namespace(
        name=f"borderlane-{suffix}",
        host_if=f"blh{suffix}"[:15],
        ns_if=f"bln{suffix}"[:15],
        host_ip=str(subnet[1]),
        ns_ip=str(subnet[2]),
    )
    _run("ip", "netns", "add", ns.name)
    try:
        _run("ip", "link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if)
        _run("ip", "link", "set", ns.ns_if, "netns", ns.name)
        _run("ip", "addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
        _run("ip", "link", "set", ns.host_if, "up")
        inside = ("ip", "-n", ns.name)
        _run(*inside, "addr", "add", f"{ns.ns_ip}/30", "dev", ns.ns_if)
        _run(*inside, "link", "set", ns.ns_if, "up")
        _run(*inside, "link", "set", "lo", "up")
        yield ns
    finally:
        # Deleting the namespace deletes its end of the pair and with it the host end (and the
        # nftables table inside); the explicit link delete covers a half-made pair.
        with contextlib.suppress(NetnsError):
            _run("ip", "netns", "del", ns.name)
        with contextlib.suppress(NetnsError):
            _run("ip", "link", "del", ns.host_if)
        if Path(f"/run/netns/{ns.name}").exists():
            raise NetnsError(f"namespace {ns.name} was not deleted")
