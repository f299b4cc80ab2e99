"""Prompt text of :mod:`mixllm.data.synthetic`: per-topic templates and vocabulary.

Each topic has a few templates, an easy and a hard list for its main slot and a list for its
second slot; a query also gets a prefix and a suffix shared by all topics. The hard slot, the
prefix and the suffix move the query's difficulty and answer length, so an embedder sees both the
topic structure and within-topic variation that matters for routing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PREFIXES", "SUFFIXES", "TOPICS", "Modifier", "Topic", "compose"]


@dataclass(frozen=True)
class Topic:
    """A kind of request: templates with ``{x}`` (main slot) and ``{y}`` (second slot)."""

    name: str
    median_output_tokens: float
    templates: tuple[str, ...]
    easy: tuple[str, ...]
    hard: tuple[str, ...]
    second: tuple[str, ...]


@dataclass(frozen=True)
class Modifier:
    """A prefix or suffix: its text, the difficulty it adds and its factor on answer length."""

    text: str
    difficulty: float
    length_factor: float


TOPICS: tuple[Topic, ...] = (
    Topic(
        "arithmetic",
        120,
        (
            "A shop sells {y} for {x} dollars each. How much do 7 of them cost in total?",
            "If a train travels {x} kilometres in 3 hours, what is its speed? It carries {y}.",
            "Tom has {x} {y} and gives away a third of them. How many are left?",
            "Compute the total price of {x} boxes of {y} at 4 dollars per box, plus 8% tax.",
        ),
        ("12", "15", "24", "30", "45", "60"),
        ("1,237", "4,861", "12,508", "38,415", "97,213", "264,009"),
        ("apples", "notebooks", "bicycles", "tickets", "marbles", "pencils"),
    ),
    Topic(
        "python",
        260,
        (
            "Write a Python function that {x}. Use {y}.",
            "In Python, how would I write code that {x}? Please use {y}.",
            "Implement a Python class that {x}, with {y} and unit tests.",
        ),
        ("reverses a string", "sums a list of numbers", "counts vowels in a word"),
        (
            "implements an LRU cache with O(1) get and put",
            "parses nested JSON and flattens it into dotted keys",
            "merges overlapping intervals in a stream",
            "detects cycles in a directed graph",
        ),
        ("type hints", "no external libraries", "a generator", "dataclasses", "asyncio"),
    ),
    Topic(
        "translation",
        45,
        (
            "Translate into {y}: '{x}'",
            "How do you say '{x}' in {y}?",
            "Please give me a natural {y} translation of the sentence '{x}'.",
        ),
        ("Good morning, how are you?", "Where is the train station?", "I like green tea."),
        (
            "The indemnifying party shall hold harmless the licensee from all claims",
            "It is raining cats and dogs, so let's not beat around the bush",
            "Notwithstanding the foregoing, the warranty lapses upon resale",
        ),
        ("French", "German", "Japanese", "Portuguese", "Finnish", "Swahili", "Korean"),
    ),
    Topic(
        "history",
        70,
        (
            "Who was {x} and why are they remembered in {y} history?",
            "In which year did {x} happen, and what followed in {y}?",
            "Give a short account of {x} for a student of {y} history.",
        ),
        ("the fall of the Berlin Wall", "Napoleon Bonaparte", "the first Moon landing"),
        (
            "the Treaty of Nerchinsk",
            "the Diet of Worms of 1521",
            "the reign of Queen Njinga of Ndongo",
            "the Pig War of 1859",
        ),
        ("European", "Asian", "African", "American", "world", "economic"),
    ),
    Topic(
        "chemistry",
        150,
        (
            "What is {x}? Explain it with an example involving {y}.",
            "Balance the reaction and explain {x} for {y}.",
            "Describe {x} in the context of {y}.",
        ),
        ("the pH of pure water", "an ionic bond", "the boiling point of ethanol"),
        (
            "the mechanism of an SN2 reaction with inversion of configuration",
            "crystal field splitting in octahedral complexes",
            "the Gibbs free energy change at non-standard conditions",
        ),
        ("sodium chloride", "methane combustion", "iron oxide", "benzene", "ammonia"),
    ),
    Topic(
        "legal",
        320,
        (
            "Review this contract clause about {x}; is it enforceable under {y}?",
            "My landlord sent a notice about {x}. What are my rights under {y}?",
            "Draft a clause covering {x} for a services agreement governed by {y}.",
        ),
        ("late payment fees", "a security deposit", "a two-week notice period"),
        (
            "a non-compete covenant with a worldwide scope",
            "limitation of liability for consequential damages",
            "assignment of intellectual property created before employment",
        ),
        ("English law", "California law", "German civil law", "the UCC", "Delaware law"),
    ),
    Topic(
        "poetry",
        110,
        (
            "Write a {x} about {y}.",
            "Compose a {x} on the theme of {y}.",
            "Could you write me a {x} inspired by {y}?",
        ),
        ("short rhyming poem", "haiku", "limerick"),
        ("villanelle", "Petrarchan sonnet", "sestina", "ghazal in strict form"),
        ("the sea at night", "autumn leaves", "a lost umbrella", "city traffic", "old friends"),
    ),
    Topic(
        "sql",
        90,
        (
            "Write an SQL query that {x} from the {y} table.",
            "Given a table {y}, give me the SQL that {x}.",
            "How do I write a query that {x}? The data is in {y}.",
        ),
        ("selects all rows where status is active", "counts rows per country"),
        (
            "computes a 7-day rolling average with window functions",
            "finds each employee's management chain with a recursive CTE",
            "returns the second highest salary per department without LIMIT",
        ),
        ("orders", "employees", "customers", "payments", "sessions"),
    ),
    Topic(
        "geography",
        60,
        (
            "What is the capital of {x}, and which rivers flow through {y}?",
            "Describe the climate of {x} compared with {y}.",
            "Which countries border {x}? Mention {y}.",
        ),
        ("France", "Japan", "Canada", "Brazil"),
        ("Bhutan", "Eswatini", "Kyrgyzstan", "Suriname", "Vanuatu"),
        ("its largest city", "the mountains", "the coast", "the north"),
    ),
    Topic(
        "physics",
        170,
        (
            "Explain {x} using {y}.",
            "A student asks about {x}. Answer with {y}.",
            "Derive {x}, referring to {y}.",
        ),
        ("why the sky is blue", "Newton's second law", "how a lever works"),
        (
            "the energy levels of a particle in a finite square well",
            "the Lorentz transformation from the postulates of relativity",
            "the partition function of a quantum harmonic oscillator",
        ),
        ("a simple analogy", "equations", "a worked example", "a diagram described in words"),
    ),
)

PREFIXES: tuple[Modifier, ...] = (
    Modifier("", 0.0, 1.0),
    Modifier("Quick question: ", -0.2, 0.7),
    Modifier("I'm studying for an exam. ", 0.0, 1.2),
    Modifier("For a complete beginner, ", -0.3, 1.1),
    Modifier("As an expert in the field, ", 0.6, 1.3),
    Modifier("Hi! ", 0.0, 1.0),
)

SUFFIXES: tuple[Modifier, ...] = (
    Modifier("", 0.0, 1.0),
    Modifier(" Answer briefly.", -0.2, 0.5),
    Modifier(" Explain step by step.", 0.2, 1.6),
    Modifier(" Give a rigorous, detailed answer and justify every step.", 0.8, 2.0),
    Modifier(" Keep it under 50 words.", 0.1, 0.4),
    Modifier(" Please double-check edge cases.", 0.4, 1.2),
)


def compose(
    topic: Topic, rng: np.random.Generator, *, hard: bool
) -> tuple[str, Modifier, Modifier]:
    """One prompt of ``topic`` (main slot from the hard list when ``hard``), with its modifiers."""
    template = topic.templates[int(rng.integers(len(topic.templates)))]
    items = topic.hard if hard else topic.easy
    x = items[int(rng.integers(len(items)))]
    y = topic.second[int(rng.integers(len(topic.second)))]
    prefix = PREFIXES[int(rng.integers(len(PREFIXES)))]
    suffix = SUFFIXES[int(rng.integers(len(SUFFIXES)))]
    body = template.format(x=x, y=y)
    if prefix.text.endswith(", ") and not body.startswith(("I ", "Tom ")):
        body = body[0].lower() + body[1:]
    return f"{prefix.text}{body}{suffix.text}", prefix, suffix
