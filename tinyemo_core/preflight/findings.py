"""What a preflight check reports: one :class:`Finding` per problem, each with what to do about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem found before a run. ``error`` stops ``tinyemo run`` (exit 2); ``warning`` is printed only.

    ``check`` is the area (dataset, model, generator, endpoint, device, disk, store), ``subject`` the thing
    checked as flows.yaml names it (``datasets.fi``, ``backbones.phi-2``), ``problem`` what is wrong and
    ``fix`` what to do.
    """

    check: str
    subject: str
    problem: str
    fix: str
    severity: Severity = "error"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]
