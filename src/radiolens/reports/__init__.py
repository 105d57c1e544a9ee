"""Report labeller: findings with negation and uncertainty from free-text reports.

Pure Python (no numpy, no torch). See :class:`ReportLabeler` and :func:`label_report`.
"""

from __future__ import annotations

from radiolens.reports.labeler import Evidence, ReportLabeler, ReportLabels, label_report
from radiolens.reports.rules import OTHER, RuleSet, load_rules

__all__ = ["OTHER", "Evidence", "ReportLabeler", "ReportLabels", "RuleSet", "label_report",
           "load_rules"]
