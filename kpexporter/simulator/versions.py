"""Which Kubernetes minor does what: the one place that knows kube-proxy's history.

Every "since 1.NN" fact the simulator relies on (research notes, kube-proxy-upstream.md) is a
predicate here, so adding a kube-proxy generation means editing one file.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_MINOR = 8
MAX_MINOR = 34
VERSIONS: tuple[str, ...] = tuple(f"1.{m}" for m in range(MIN_MINOR, MAX_MINOR + 1))
MODES: tuple[str, ...] = ("iptables", "ipvs", "nftables")
IP_FAMILIES: tuple[str, ...] = ("IPv4", "IPv6")

# Go toolchain each release was built with (kubernetes_build_info / go_info), approximately.
_GO = {
    8: "go1.8.3", 9: "go1.8.3", 10: "go1.9.3", 11: "go1.10.3", 12: "go1.10.8", 13: "go1.11.5",
    14: "go1.12.1", 15: "go1.12.5", 16: "go1.12.9", 17: "go1.13.4", 18: "go1.13.9",
    19: "go1.15", 20: "go1.15.5", 21: "go1.16.1", 22: "go1.16.7", 23: "go1.17.3",
    24: "go1.18", 25: "go1.19", 26: "go1.19.4", 27: "go1.20.3", 28: "go1.20.7",
    29: "go1.21.5", 30: "go1.22.2", 31: "go1.22.5", 32: "go1.23.3", 33: "go1.24.2",
    34: "go1.24.6",
}


@dataclass(frozen=True, slots=True)
class Version:
    """A Kubernetes minor release; comparisons are on the minor number (major is always 1)."""

    minor: int

    @classmethod
    def parse(cls, text: str) -> Version:
        """Accept ``1.30``, ``v1.30`` or ``1.30.2``; raise ValueError naming what is supported."""
        parts = text.strip().lstrip("v").split(".")
        try:
            major, minor = int(parts[0]), int(parts[1])
        except (IndexError, ValueError):
            raise ValueError(f"{text!r} is not a Kubernetes version like 1.30") from None
        if major != 1 or not MIN_MINOR <= minor <= MAX_MINOR:
            raise ValueError(f"{text!r} is not supported (1.{MIN_MINOR} to 1.{MAX_MINOR})")
        return cls(minor)

    def __str__(self) -> str:
        return f"1.{self.minor}"

    def at_least(self, minor: int) -> bool:
        return self.minor >= minor

    @property
    def git_version(self) -> str:
        return f"v1.{self.minor}.0"

    @property
    def go_version(self) -> str:
        return _GO[self.minor]

    # --- healthz -----------------------------------------------------------------------------
    @property
    def healthz_generation(self) -> str:
        """Which handler: raw (≤1.16), fmt (1.17–1.27), eligible (1.28–1.32), json (1.33+)."""
        if self.minor <= 16:
            return "raw"
        if self.minor <= 27:
            return "fmt"
        if self.minor <= 32:
            return "eligible"
        return "json"

    @property
    def has_livez(self) -> bool:
        return self.minor >= 28

    @property
    def has_nosniff(self) -> bool:
        return self.minor >= 16

    # --- sync cadence ------------------------------------------------------------------------
    def hourly_resync(self, mode: str) -> bool:
        """Idle re-sync is hourly: iptables since 1.17 (#81517), nftables always, ipvs never."""
        return mode == "nftables" or (mode == "iptables" and self.minor >= 17)

    # --- metrics -----------------------------------------------------------------------------
    @property
    def alpha_prefix(self) -> str:
        """The metrics-stability framework (1.16) prefixes HELP with the stability level."""
        return "[ALPHA] " if self.minor >= 16 else ""

    @property
    def per_family_labels(self) -> bool:
        """1.33 (#129173) added ``ip_family`` to most kubeproxy_ series."""
        return self.minor >= 33

    @property
    def mode_specific_registration(self) -> bool:
        """1.31 (#124557) registers iptables-only families in iptables mode only."""
        return self.minor >= 31
