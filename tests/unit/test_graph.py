"""Mermaid and Graphviz drawings carry exactly the declared edges, so they cannot drift."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from xml.etree import ElementTree

import pytest

from congvan.states import MACHINES
from congvan.states.graph import all_to_dot, all_to_mermaid, to_dot, to_mermaid
from congvan.states.spec import MachineSpec, Transition, edge
from tests.tools import require

QUOTED = MachineSpec(
    name="quoted",
    states=("a", "b"),
    initial="a",
    finals=("b",),
    transitions=(edge("go", "a", "b", conditions=("ok",), effects=("mark",), actions=("tell",)),),
    descriptions={"a": 'the "first" state'},
)

SPECS = [*MACHINES.values(), QUOTED]

MERMAID_EDGE = re.compile(r"^    (\w+) --> (\w+): (\w+)(.*)$")
DOT_EDGE = re.compile(r'^    "(\w+)" -> "(\w+)" \[label="(\w+)([^"]*)"(, style=dashed)?\];$')
DOT_NODE = re.compile(r'^    "(\w+)" \[tooltip="([^"]*)"(, peripheries=2)?\];$')


def spec_id(spec: MachineSpec) -> str:
    return spec.name


def declared_edges(spec: MachineSpec) -> Counter[tuple[str, str, str]]:
    return Counter((src, t.dest, t.trigger) for t in spec.transitions for src in t.source)


def by_edge(spec: MachineSpec) -> dict[tuple[str, str, str], Transition]:
    """Each transition by its source, destination and trigger (one trigger may do
    different things from different states)."""
    return {(src, t.dest, t.trigger): t for t in spec.transitions for src in t.source}


def assert_label_tells_the_edge(t: Transition, rest: str) -> None:
    for name in (*t.conditions, *t.effects, *t.actions):
        assert name in rest, (t.trigger, name, rest)
    if t.conditions:
        assert "[" + ", ".join(t.conditions) + "]" in rest


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_mermaid_draws_every_declared_edge_and_no_other(spec: MachineSpec) -> None:
    text = to_mermaid(spec)
    lines = text.splitlines()
    edges = by_edge(spec)

    drawn: Counter[tuple[str, str, str]] = Counter()
    for line in lines:
        if match := MERMAID_EDGE.match(line):
            src, dest, trigger, rest = match.groups()
            drawn[(src, dest, trigger)] += 1
            assert_label_tells_the_edge(edges[(src, dest, trigger)], rest)

    assert drawn == declared_edges(spec)
    assert lines[0] == "stateDiagram-v2"
    assert f"    [*] --> {spec.initial}" in lines
    assert {line for line in lines if line.endswith("--> [*]")} == {
        f"    {final} --> [*]" for final in spec.finals
    }
    assert text.endswith("\n")


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_dot_draws_every_declared_edge_and_dashes_the_derived_ones(spec: MachineSpec) -> None:
    lines = to_dot(spec).splitlines()
    edges = by_edge(spec)

    drawn: Counter[tuple[str, str, str]] = Counter()
    for line in lines:
        if match := DOT_EDGE.match(line):
            src, dest, trigger, rest, dashed = match.groups()
            drawn[(src, dest, trigger)] += 1
            assert_label_tells_the_edge(edges[(src, dest, trigger)], rest)
            assert bool(dashed) == edges[(src, dest, trigger)].derived, line

    assert drawn == declared_edges(spec)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_dot_declares_every_state_and_marks_start_and_finals(spec: MachineSpec) -> None:
    lines = to_dot(spec).splitlines()

    nodes = {}
    for line in lines:
        if match := DOT_NODE.match(line):
            state, tooltip, double = match.groups()
            nodes[state] = (tooltip, bool(double))

    assert set(nodes) == set(spec.states)
    for state, (tooltip, double) in nodes.items():
        assert double == (state in spec.finals)
        assert tooltip == spec.descriptions.get(state, "").replace('"', "'")
    assert f'    __start -> "{spec.initial}";' in lines


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_dot_is_syntactically_plausible(spec: MachineSpec) -> None:
    text = to_dot(spec)
    lines = text.splitlines()

    assert lines[0] == f'digraph "{spec.name}" {{'
    assert lines[-1] == "}"
    assert text.count("{") == text.count("}") == 1
    assert text.count("[") == text.count("]")
    # Quotes pair up on every line, so no label or tooltip leaks into the next.
    for line in lines:
        assert line.count('"') % 2 == 0, line
    for line in lines[1:-1]:
        assert line.startswith("    ")
        assert line.endswith(";"), line
        if "->" in line:
            assert DOT_EDGE.match(line) or line == f'    __start -> "{spec.initial}";', line


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_graphviz_accepts_the_dot(spec: MachineSpec) -> None:
    # The project never needs Graphviz; this test checks its text with the real parser.
    subprocess.run(
        [require("dot"), "-Tsvg", "-o", "/dev/null"],
        input=to_dot(spec),
        text=True,
        check=True,
        timeout=30,
    )


def test_a_derived_edge_is_drawn_dashed_and_a_plain_one_is_not() -> None:
    dot = to_dot(MACHINES["document"])

    assert '"sent" -> "delivered" [label="delivered [all_delivered]", style=dashed];' in dot
    assert (
        '"failed" -> "sent" [label="resend [a_dispatch_failed, no_request_awaiting, '
        'never_updated] / reset_failed_dispatches, deliver_dispatches"];'
    ) in dot


def test_every_machine_is_one_graphviz_graph_each_in_its_box() -> None:
    # `congvan graph --format dot | dot -Tsvg` makes one picture: one graph, a cluster each
    text = all_to_dot(list(MACHINES.values()))
    svg = subprocess.run(
        [require("dot"), "-Tsvg"], input=text, text=True, check=True, capture_output=True
    ).stdout
    ElementTree.fromstring(svg)  # one document: a renderer reads one graph a file

    assert text.count("digraph") == 1
    for spec in MACHINES.values():
        assert f'    subgraph "cluster_{spec.name}" {{' in text
        drawn = Counter(
            (src, dest, trigger)
            for src, dest, trigger in re.findall(
                rf'"{spec.name}\.(\w+)" -> "{spec.name}\.(\w+)" \[label="(\w+)', text
            )
        )
        assert drawn == declared_edges(spec)
        for state in spec.states:  # shown by its own name
            assert f'"{spec.name}.{state}" [' in text and f'label="{state}"' in text


def test_every_machine_is_one_mermaid_diagram_each_a_composite_state() -> None:
    text = all_to_mermaid(list(MACHINES.values()))

    assert text.count("stateDiagram-v2") == 1 and text.startswith("stateDiagram-v2\n")
    assert text.count("{") == text.count("}") == len(MACHINES)
    for spec in MACHINES.values():
        p = f"{spec.name}_"
        assert f"    state {spec.name} {{" in text
        drawn = Counter(re.findall(rf"^        {p}(\w+) --> {p}(\w+): (\w+)", text, re.M))
        assert drawn == declared_edges(spec)
        assert f"        [*] --> {p}{spec.initial}" in text
        for state in spec.states:
            assert f'        state "{state}" as {p}{state}' in text
