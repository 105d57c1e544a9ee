"""Triage policy: operating thresholds, urgency per finding, and the priority formula.

Defaults come from the model's ``model.json``; a YAML file can override them::

    thresholds: {pneumonia: 0.4}
    urgency: {pneumonia: 3}

Priority runs from 0 to 100 (higher is read first). A flagged study always ranks above
every unflagged one: ``50 + 15 * (max urgency of its flagged findings, up to 3) + 5 *
(its largest margin beyond a threshold)``, capped at 100. An unflagged study gets at most
40, growing with how close its closest finding came to its threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from radiolens.errors import ConfigError

__all__ = ["TriagePolicy", "load_policy"]


@dataclass(frozen=True)
class TriagePolicy:
    """Thresholds and urgency per finding name."""

    thresholds: dict[str, float]
    urgency: dict[str, int] = field(default_factory=dict)

    def is_flagged(self, name: str, probability: float) -> bool:
        """Whether ``probability`` reaches the finding's operating threshold."""
        return probability >= self.thresholds.get(name, 0.5)

    def priority(self, probabilities: Mapping[str, float]) -> int:
        """The worklist priority (0..100) of a study with these probabilities."""
        flagged = [n for n, p in probabilities.items() if self.is_flagged(n, p)]
        if flagged:
            urgency = max(min(3, self.urgency.get(n, 1)) for n in flagged)
            margin = max(_margin(probabilities[n], self.thresholds.get(n, 0.5))
                         for n in flagged)
            return min(100, round(50 + 15 * urgency + 5 * margin))
        if not probabilities:
            return 0
        closeness = max(min(1.0, p / max(self.thresholds.get(n, 0.5), 1e-6))
                        for n, p in probabilities.items())
        return round(40 * closeness)


def _margin(p: float, t: float) -> float:
    return 1.0 if t >= 1.0 else max(0.0, (p - t) / (1.0 - t))


def load_policy(thresholds: Mapping[str, float], urgency: Mapping[str, int],
                override: str | Path | None = None) -> TriagePolicy:
    """The model's thresholds and urgency, overridden by a YAML file when given.

    Raises:
        ConfigError: the file is unreadable, names an unknown finding, or has values out
            of range.
    """
    th = {k: float(v) for k, v in thresholds.items()}
    urg = {k: int(v) for k, v in urgency.items()}
    if override is not None:
        path = Path(override)
        try:
            doc: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"policy file {path} does not exist") from None
        except UnicodeDecodeError:
            raise ConfigError(f"policy file {path} is not a UTF-8 text (YAML) file; pass "
                              "a YAML file like 'thresholds: {pneumonia: 0.4}'") from None
        except OSError as exc:
            raise ConfigError(f"cannot read the policy file {path}: "
                              f"{exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(doc, dict) or set(doc) - {"thresholds", "urgency"}:
            raise ConfigError(f"{path}: a policy file holds only 'thresholds' and 'urgency' "
                              "mappings")
        for section in ("thresholds", "urgency"):
            for name, value in (doc.get(section) or {}).items():
                if name not in th:
                    from radiolens._suggest import did_you_mean

                    raise ConfigError(f"{path}: {section}: the model has no finding {name!r}"
                                      f"{did_you_mean(str(name), list(th))}; it scores "
                                      f"{', '.join(th)}")
                try:
                    if section == "thresholds":
                        th[name] = float(value)
                    else:
                        urg[name] = int(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"{path}: {section}.{name}: {value!r} is not a "
                                      "number") from None
        bad = [n for n, v in th.items() if not 0.0 <= v <= 1.0]
        if bad:
            raise ConfigError(f"{path}: thresholds must lie in [0, 1] ({', '.join(bad)})")
    return TriagePolicy(th, urg)
