"""Mermaid and Graphviz text for a machine, drawn from its declared data; every machine in
one drawing, each in its own box, for ``graph`` of them all."""

from __future__ import annotations

from collections.abc import Sequence

from .spec import MachineSpec, Transition


def _label(t: Transition) -> str:
    parts = [t.trigger]
    if t.conditions:
        parts.append("[" + ", ".join(t.conditions) + "]")
    work = [*t.effects, *t.actions]
    if work:
        parts.append("/ " + ", ".join(work))
    return " ".join(parts)


def _mermaid_lines(spec: MachineSpec, prefix: str = "", indent: str = "    ") -> list[str]:
    """The start, edges and ends of ``spec``; ``prefix``: before each state's id (states of
    two machines share names: ``failed``), the state still shown by its own name."""
    lines = [f'{indent}state "{s}" as {prefix}{s}' for s in spec.states] if prefix else []
    lines.append(f"{indent}[*] --> {prefix}{spec.initial}")
    for t in spec.transitions:
        for src in t.source:
            lines.append(f"{indent}{prefix}{src} --> {prefix}{t.dest}: {_label(t)}")
    lines.extend(f"{indent}{prefix}{final} --> [*]" for final in spec.finals)
    return lines


def to_mermaid(spec: MachineSpec) -> str:
    """A ``stateDiagram-v2`` for ``spec``."""
    return "\n".join(["stateDiagram-v2", *_mermaid_lines(spec)]) + "\n"


def all_to_mermaid(specs: Sequence[MachineSpec]) -> str:
    """One ``stateDiagram-v2`` holding each machine as a composite state of its name."""
    lines = ["stateDiagram-v2"]
    for spec in specs:
        lines.append(f"    state {spec.name} {{")
        lines += _mermaid_lines(spec, prefix=f"{spec.name}_", indent="        ")
        lines.append("    }")
    return "\n".join(lines) + "\n"


def _dot_lines(spec: MachineSpec, prefix: str = "", indent: str = "    ") -> list[str]:
    start = f'"__start_{prefix}"' if prefix else "__start"
    lines = [
        f'{indent}{start} [shape=point, label=""];',
        f'{indent}{start} -> "{prefix}{spec.initial}";',
    ]
    for s in spec.states:
        shape = ", peripheries=2" if s in spec.finals else ""
        tip = spec.descriptions.get(s, "").replace('"', "'")
        named = f', label="{s}"' if prefix else ""
        lines.append(f'{indent}"{prefix}{s}" [tooltip="{tip}"{shape}{named}];')
    for t in spec.transitions:
        style = ", style=dashed" if t.derived else ""
        label = _label(t).replace('"', "'")
        for src in t.source:
            lines.append(f'{indent}"{prefix}{src}" -> "{prefix}{t.dest}" [label="{label}"{style}];')
    return lines


_DOT_HEAD = ("    rankdir=LR;", '    node [shape=box, style=rounded, fontname="Helvetica"];')


def to_dot(spec: MachineSpec) -> str:
    """A Graphviz ``digraph`` for ``spec``; derived edges are dashed."""
    return "\n".join([f'digraph "{spec.name}" {{', *_DOT_HEAD, *_dot_lines(spec), "}"]) + "\n"


def all_to_dot(specs: Sequence[MachineSpec]) -> str:
    """One ``digraph`` holding each machine as a cluster of its name."""
    lines = ['digraph "congvan" {', *_DOT_HEAD]
    for spec in specs:
        lines += [f'    subgraph "cluster_{spec.name}" {{', f'        label="{spec.name}";']
        lines += _dot_lines(spec, prefix=f"{spec.name}.", indent="        ")
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"
