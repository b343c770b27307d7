"""Deterministic benchmark texts: varied, realistic memory sentences and search queries.

Every memory comes from one of a few templates filled with random words (fixed seed); each
template also has a question form, used as the paraphrase query for that memory.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = (
    "Alice Ana Amir Bea Bruno Chen Chloe Dara Diego Elena Farah Felix Grace Hugo Ines "
    "Jonas Kai Kenji Lara Leo Maya Mei Nadia Noah Omar Priya Quinn Rosa Sam Sofia Tariq Tomas "
    "Uma Vera Wes Xin Yara Yusuf Zoe Zara"
).split()
DRINKS = "green tea|black coffee|oat latte|sparkling water|chai|espresso|mint tea|cold brew".split(
    "|"
)
ACTIVITIES = (
    "reviewing code|writing reports|planning sprints|on long calls|debugging at night|"
    "sketching designs|reading papers|answering support tickets"
).split("|")
PLACES = "Berlin|Lisbon|Nairobi|Osaka|Toronto|Austin|Lyon|Melbourne|Seoul|Bogota".split("|")
PROJECTS = "Apollo|Borealis|Cobalt|Delta|Ember|Falcon|Granite|Harbor|Iris|Juniper|Kestrel".split(
    "|"
)
ARTIFACTS = "budget|roadmap|design doc|launch plan|security review|hiring plan|migration plan"
SECTIONS = "risks|costs|timeline|staffing|testing|rollout|metrics|open questions".split("|")
COMPONENTS = "checkout page|login form|search index|billing job|mobile app|export tool|scheduler"
ERRORS = "timeout|null pointer error|memory leak|permission error|deadlock|encoding error"
CONDITIONS = (
    "the cart has more than fifty items|two users edit the same record|the VPN drops|"
    "the report spans a leap year|the upload is larger than a gigabyte|the cache is cold"
).split("|")
EVENTS = "product launch|board meeting|team offsite|customer workshop|conference talk|audit"
SEATS = "a window|an aisle|an exit row".split("|")
ALLERGENS = "peanuts|shellfish|gluten|lactose|sesame|soy|eggs".split("|")
FOODS = "pad thai|pastries|pizza|sushi|curry|ice cream|dumplings".split("|")
SYSTEMS = "ledger|identity|notification|catalog|pricing|telemetry|inventory|routing".split("|")
DATATYPES = "audit events|user sessions|price history|order records|feature flags".split("|")
STORES = "PostgreSQL|S3|Redis|Kafka|Elasticsearch|ClickHouse".split("|")
TEAMS = "platform|payments|growth|data|mobile|infrastructure|trust and safety".split("|")
INSTRUMENTS = "piano|cello|violin|drums|guitar|saxophone|ukulele".split("|")
ITEMS = "standing desks|monitors|headsets|laptops|office chairs|whiteboards|webcams".split("|")
VENDORS = "Northwind|Contoso|Globex|Initech|Umbrella Supplies|Acme".split("|")
TASKS = (
    "renew the domain|book the meeting room|send the slides|update the contract|"
    "back up the database|order the catering|rotate the API keys"
).split("|")
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November".split()

# (memory template, paraphrase question, memory type)
TEMPLATES: tuple[tuple[str, str, str], ...] = (
    (
        "{name} prefers {drink} over {drink2} when {activity}, especially on {weekday}s.",
        "What does {name} like to drink while {activity}?",
        "semantic",
    ),
    (
        "On {weekday} {name} met {name2} in {place} to go through the {project} {artifact}.",
        "When did {name} and {name2} discuss the {project} {artifact} in {place}?",
        "episodic",
    ),
    (
        "The {project} {artifact} is due on {month} {day}, and {name} owns the {section} section.",
        "Who is responsible for the {section} part of the {project} {artifact}?",
        "episodic",
    ),
    (
        "{name} reported that the {component} fails with a {error} whenever {condition}.",
        "What bug did {name} find in the {component}?",
        "episodic",
    ),
    (
        "{name} flies to {place} on {month} {day} for the {event} and asked for {seat} seat.",
        "Which city is {name} travelling to for the {event} in {month}?",
        "episodic",
    ),
    (
        "{name} is allergic to {allergen}, so order no {food} for {name}'s team lunch in {place}.",
        "What should we avoid ordering for {name} because of allergies?",
        "semantic",
    ),
    (
        "The {system} service keeps its {datatype} in {store} and belongs to the {team} team; "
        "{name} is on call for it.",
        "Where does the {system} service store {datatype}, and which team owns it?",
        "semantic",
    ),
    (
        "{name} has been learning the {instrument} for {n} months and practises every "
        "{weekday} evening.",
        "How long has {name} been learning to play the {instrument}?",
        "semantic",
    ),
    (
        "{name} ordered {n} {item} from {vendor} for the {place} office, at {price} dollars in "
        "total.",
        "How much did {name}'s order of {item} for the {place} office cost?",
        "episodic",
    ),
    (
        "Remind {name} to {task} before the {event} on {weekday}, {month} {day}.",
        "What does {name} need to do before the {event} in {month}?",
        "episodic",
    ),
)


@dataclass(frozen=True)
class BenchMemory:
    """One memory to store, with its paraphrase question."""

    coord: str
    text: str
    paraphrase: str
    memory_type: str
    importance: float
    topic: str


def _slots(rng: random.Random) -> dict[str, str]:
    name, name2 = rng.sample(NAMES, 2)
    drink, drink2 = rng.sample(DRINKS, 2)
    return {
        "name": name,
        "name2": name2,
        "drink": drink,
        "drink2": drink2,
        "activity": rng.choice(ACTIVITIES),
        "weekday": rng.choice(WEEKDAYS),
        "place": rng.choice(PLACES),
        "project": rng.choice(PROJECTS),
        "artifact": rng.choice(ARTIFACTS.split("|")),
        "section": rng.choice(SECTIONS),
        "month": rng.choice(MONTHS),
        "day": str(rng.randint(1, 28)),
        "component": rng.choice(COMPONENTS.split("|")),
        "error": rng.choice(ERRORS.split("|")),
        "condition": rng.choice(CONDITIONS),
        "event": rng.choice(EVENTS.split("|")),
        "seat": rng.choice(SEATS),
        "allergen": rng.choice(ALLERGENS),
        "food": rng.choice(FOODS),
        "system": rng.choice(SYSTEMS),
        "datatype": rng.choice(DATATYPES),
        "store": rng.choice(STORES),
        "team": rng.choice(TEAMS),
        "instrument": rng.choice(INSTRUMENTS),
        "n": str(rng.randint(2, 48)),
        "item": rng.choice(ITEMS),
        "vendor": rng.choice(VENDORS),
        "price": f"{rng.randint(3, 900) * 10:,}",
        "task": rng.choice(TASKS),
    }


def make_memories(count: int, seed: int, coord_base: int = 0) -> list[BenchMemory]:
    """``count`` memories with unique texts and coordinates, the same for the same seed."""
    rng = random.Random(seed)
    seen: set[str] = set()
    result: list[BenchMemory] = []
    while len(result) < count:
        topic = rng.randrange(len(TEMPLATES))
        template, question, memory_type = TEMPLATES[topic]
        slots = _slots(rng)
        text = template.format(**slots)
        if text in seen:
            continue
        seen.add(text)
        i = coord_base + len(result)
        result.append(
            BenchMemory(
                coord=f"{i},{i % 97},{i % 13}",
                text=text,
                paraphrase=question.format(**slots),
                memory_type=memory_type,
                importance=round(rng.uniform(0.1, 1.0), 2),
                topic=f"t{topic}",
            )
        )
    return result


@dataclass(frozen=True)
class Query:
    """A search query and the memory it comes from."""

    text: str
    target: BenchMemory
    exact: bool


def make_queries(memories: list[BenchMemory], count: int, seed: int) -> list[Query]:
    """Up to ``count`` queries over distinct stored memories, alternately the exact stored
    text and the memory's paraphrase question; no two texts alike (the service caches query
    vectors by text, so a repeated text would not be embedded again). Fewer only when the
    memories run out of distinct texts."""
    rng = random.Random(seed)
    seen: set[str] = set()
    result: list[Query] = []
    for memory in rng.sample(memories, len(memories)):
        exact = len(result) % 2 == 0
        text = memory.text if exact else memory.paraphrase
        if text not in seen:
            seen.add(text)
            result.append(Query(text, memory, exact))
        if len(result) == count:
            break
    return result


def as_payload(memory: BenchMemory) -> dict[str, object]:
    """The API body of one memory."""
    return {
        "coord": memory.coord,
        "payload": {"text": memory.text, "topic": memory.topic, "source": "benchmark"},
        "memory_type": memory.memory_type,
        "importance": memory.importance,
    }
