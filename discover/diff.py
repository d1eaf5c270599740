"""What a re-discovery changed: the grants one policy adds to, and removes from, another.

For review of a pull request that updates a committed policy: grants are compared, not
statements, so a change in how statements merge (or in their ``Sid`` s) is no change at all.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from discover.iamdb import Action
from discover.policy import Grant, PolicyDocument


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """Two policies' effective grants; what was added and removed, sorted."""

    old: frozenset[Grant]
    new: frozenset[Grant]

    @property
    def added(self) -> tuple[Grant, ...]:
        return tuple(sorted(self.new - self.old))

    @property
    def removed(self) -> tuple[Grant, ...]:
        return tuple(sorted(self.old - self.new))

    @property
    def unchanged(self) -> bool:
        return self.old == self.new

    @property
    def new_actions(self) -> tuple[Action, ...]:
        """Actions the new policy grants and the old one did not grant at all."""
        return tuple(sorted({g.action for g in self.new} - {g.action for g in self.old}))

    @property
    def gone_actions(self) -> tuple[Action, ...]:
        """Actions the old policy granted and the new one does not grant at all."""
        return tuple(sorted({g.action for g in self.old} - {g.action for g in self.new}))


def diff_policies(old: PolicyDocument, new: PolicyDocument) -> PolicyDiff:
    """The grants ``new`` adds to ``old`` and removes from it."""
    return PolicyDiff(old.effective().grants, new.effective().grants)


def _describe(grant: Grant) -> str:
    text = f"{grant.action} on {grant.resource}"
    for operator, key, values in grant.condition:
        text += f" if {operator} {key} {' | '.join(values)}"
    return text


def render_diff(diff: PolicyDiff, old_label: str, new_label: str) -> str:
    """Plain text for a pull request: new actions, gone actions, then changed resources."""
    lines = [f"discover diff: {old_label} -> {new_label}"]
    if diff.unchanged:
        lines.append("No change: both policies grant the same actions on the same resources.")
        return "\n".join(lines) + "\n"
    lines.append(
        f"{len(diff.added)} grant(s) added, {len(diff.removed)} removed; "
        f"{len(diff.new_actions)} new action(s), {len(diff.gone_actions)} action(s) gone."
    )
    new_actions, gone_actions = set(diff.new_actions), set(diff.gone_actions)
    sections = (
        ("New actions", [g for g in diff.added if g.action in new_actions], "+"),
        ("Actions no longer granted", [g for g in diff.removed if g.action in gone_actions], "-"),
    )
    for title, grants, sign in sections:
        if grants:
            lines += ["", f"{title}:"]
            lines += [f"{sign} {_describe(g)}" for g in grants]
    changed: dict[Action, list[tuple[str, Grant]]] = defaultdict(list)
    for grant in diff.added:
        if grant.action not in new_actions:
            changed[grant.action].append(("+", grant))
    for grant in diff.removed:
        if grant.action not in gone_actions:
            changed[grant.action].append(("-", grant))
    if changed:
        lines += ["", "Resources changed:"]
        for action in sorted(changed):
            lines.append(f"  {action}")
            for sign, grant in sorted(changed[action], key=lambda item: (item[0] == "-", item[1])):
                lines.append(f"{sign}   {_describe(grant).removeprefix(f'{action} on ')}")
    return "\n".join(lines) + "\n"
