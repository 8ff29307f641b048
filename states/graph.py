"""Mermaid and Graphviz text for a machine, drawn from its declared data."""

from __future__ import annotations

from .spec import MachineSpec, Transition


def _label(t: Transition) -> str:
    parts = [t.trigger]
    if t.conditions:
        parts.append("[" + ", ".join(t.conditions) + "]")
    work = [*t.effects, *t.actions]
    if work:
        parts.append("/ " + ", ".join(work))
    return " ".join(parts)


def to_mermaid(spec: MachineSpec) -> str:
    """A ``stateDiagram-v2`` for ``spec``."""
    lines = ["stateDiagram-v2", f"    [*] --> {spec.initial}"]
    for t in spec.transitions:
        for src in t.source:
            lines.append(f"    {src} --> {t.dest}: {_label(t)}")
    lines.extend(f"    {final} --> [*]" for final in spec.finals)
    return "\n".join(lines) + "\n"


def to_dot(spec: MachineSpec) -> str:
    """A Graphviz ``digraph`` for ``spec``; derived edges are dashed."""
    lines = [
        f'digraph "{spec.name}" {{',
        "    rankdir=LR;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    __start [shape=point, label=""];',
        f'    __start -> "{spec.initial}";',
    ]
    for s in spec.states:
        shape = ", peripheries=2" if s in spec.finals else ""
        tip = spec.descriptions.get(s, "").replace('"', "'")
        lines.append(f'    "{s}" [tooltip="{tip}"{shape}];')
    for t in spec.transitions:
        style = ", style=dashed" if t.derived else ""
        label = _label(t).replace('"', "'")
        for src in t.source:
            lines.append(f'    "{src}" -> "{t.dest}" [label="{label}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"
