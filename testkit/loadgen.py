"""Load for the fault tests and ``benchmarks/load.py``: clients that write coordinates of
their own, a record of every answer, and the check that the stores hold exactly what those
answers allow.

A :class:`Loader` is one client sending one request at a time. For every coordinate it
wrote it keeps the set of states the stores may end in (a text, or :data:`ABSENT`):

- an acknowledged store (2xx) leaves one state, its text; an acknowledged delete (or a 404
  to a delete) leaves one, absent;
- a request without an acknowledgement (no answer, a 503) adds its own outcome to what was
  possible before: it is wholly there or wholly absent;
- a supersede (a new memory superseding one of the client's current ones) leaves the
  target's text as it was; :mod:`testkit.history_verdict` checks the supersession.

Each client writes only its own coordinates and waits for each answer, so nothing else
reorders its history. A read checks the answer against the states as it goes (a memory
acknowledged and then missing, or deleted and then served, is caught there);
:func:`testkit.verdict.verify` checks the stores against the states after the load.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

ABSENT = None
State = str | None  # the text stored at a coordinate, or ABSENT

WHO = ("the baker", "a pilot", "my sister", "the sailor", "a student", "the mayor", "a child")
DID = ("painted", "lost", "repaired", "sold", "found", "carried", "described", "forgot")
WHAT = ("a red bicycle", "the silver key", "an umbrella", "a wooden boat", "a jar of honey")
WHERE = ("near the harbour", "in the attic", "at the market", "under the bridge", "by the river")


@dataclass(frozen=True)
class Write:
    """One memory as a request sends it."""

    coord: str
    text: str
    vector: list[float] | None = None

    def body(self) -> dict[str, Any]:
        item: dict[str, Any] = {"coord": self.coord, "payload": {"text": self.text}}
        if self.vector is not None:
            item["vector"] = self.vector
        return item


# The shapes an item write takes (:attr:`Mix.item_forms`): its ``index`` and where its vectors
# live. ``text``: the default (``value.text`` embedded in the default space); ``plain``: index
# false (no vector, no Milvus); ``paths``: ``text`` and every tag (``tags[*]``), one vector
# each; ``space``: the client's own vectors for ``text`` and each tag in a registered space.
ITEM_FORMS = ("text", "plain", "paths", "space")
TAGS = ("harbour", "attic", "market", "bridge", "river", "orchard")


@dataclass(frozen=True)
class ItemWrite(Write):
    """One item as ``PUT /items`` sends it: ``coord`` is its key, ``form`` one of
    :data:`ITEM_FORMS`; ``vectors`` the client's (path, vector) pairs of a ``space`` write."""

    form: str = "text"
    tags: tuple[str, ...] = ()
    space: str | None = None
    vectors: tuple[tuple[str, tuple[float, ...]], ...] = ()

    def item_body(self, namespace: list[str]) -> dict[str, Any]:
        """``PUT /items`` at ``namespace`` and key ``coord``."""
        body: dict[str, Any] = {"namespace": namespace, "key": self.coord}
        body["value"] = {"text": self.text, **({"tags": list(self.tags)} if self.tags else {})}
        if self.form == "plain":
            body["index"] = False
        elif self.form in ("paths", "space"):
            body["index"] = ["text", "tags[*]"]
        if self.form == "space":
            body["space"] = self.space
            body["vectors"] = [{"path": p, "vector": list(v)} for p, v in self.vectors]
        return body

    def expected_vectors(self) -> Sequence[tuple[str, str | tuple[float, ...]]]:
        """What the stores must hold for it: (path, the text embedded or the client's
        vector) per vector, in the order sent; none for ``plain``."""
        if self.form == "plain":
            return []
        if self.form == "space":
            return list(self.vectors)
        return [("text", self.text), *[("tags[*]", t) for t in self.tags]]


@dataclass
class Request:
    """A request and what came back: ``status`` None means no answer (a killed server, a
    refused connection, a client timeout named in ``error``)."""

    # store | batch | supersede | delete | get | search | item_put | item_delete | item_get
    # | messages
    kind: str
    writes: tuple[Write, ...] = ()
    coord: str = ""  # a delete's or read's coordinate; the one a supersede supersedes
    query: str = ""
    status: int | None = None
    body: Any = None
    error: str = ""
    started: float = 0.0
    seconds: float = 0.0

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def is_write(self) -> bool:
        return self.kind in (
            "store",
            "batch",
            "supersede",
            "delete",
            "item_put",
            "item_delete",
            "messages",
        )

    def coords(self) -> list[str]:
        return [w.coord for w in self.writes] if self.writes else [self.coord]

    def error_class(self) -> str:
        return str(self.body.get("error", "")) if isinstance(self.body, dict) else ""

    def detail(self) -> str:
        return str(self.body.get("detail", "")) if isinstance(self.body, dict) else ""

    def describe(self) -> str:
        what = f"{self.kind} {self.coords()[0]}" + (
            f" (+{len(self.writes) - 1})" if len(self.writes) > 1 else ""
        )
        if self.status is None:
            return f"{what}: no answer after {self.seconds:.1f} s ({self.error})"
        return f"{what}: {self.status} after {self.seconds:.1f} s {str(self.body)[:200]}"


@dataclass(frozen=True)
class Mix:
    """Relative weights of the requests a :class:`Loader` sends, and their shape."""

    batch: float = 0.0  # POST /memories/batch of `batch_size`, `replaced_per_batch` at used coords
    single: float = 0.0  # POST /memories at a new coordinate
    replace: float = 0.0  # POST /memories at a coordinate holding an acknowledged memory
    supersede: float = 0.0  # POST /memories at a new coordinate superseding a current memory
    delete: float = 0.0
    get: float = 0.0
    search: float = 0.0
    item_put: float = 0.0  # PUT /items: a new key, or (half the time) one holding an item
    item_delete: float = 0.0
    item_get: float = 0.0
    # POST /conversations/load-c<index>/messages: `messages_per_post` new messages with ids
    messages: float = 0.0
    messages_per_post: int = 5
    batch_size: int = 50
    replaced_per_batch: int = 5
    own_vectors: float = 0.5  # share of writes carrying the client's own vector
    retry: float = 0.0  # chance that a write without an acknowledgement is sent again next
    item_forms: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)  # weights of ITEM_FORMS
    item_space: str = ""  # the registered space of the "space" form (the test registers it)
    item_space_dimension: int = 8


class Loader(threading.Thread):
    """One sequential client on the coordinates ``"<index>,<n>"``.

    It stops after ``max_new`` new coordinates, when ``stop`` is set, or when ``up`` (set
    while the server is meant to be serving) stays clear for ``up_timeout`` seconds; it
    waits on ``up`` before every request, so a restart does not burn through the plan.
    """

    def __init__(
        self,
        index: int,
        base_url: str,
        headers: dict[str, str],
        mix: Mix,
        *,
        dimension: int,
        seed: int,
        stop: threading.Event,
        max_new: int | None = None,
        up: threading.Event | None = None,
        timeout: float = 60.0,
        up_timeout: float = 180.0,
    ) -> None:
        super().__init__(name=f"loader-{index}", daemon=True)
        self.index = index
        self.base_url = base_url
        self.headers = headers
        self.mix = mix
        self.dimension = dimension
        self.rng = random.Random(seed * 1000 + index)
        self.stop = stop
        self.max_new = max_new
        self.up = up
        self.timeout = timeout
        self.up_timeout = up_timeout
        self.requests: list[Request] = []
        self.states: dict[str, set[State]] = {}
        self.present: dict[str, None] = {}  # coordinates certainly holding a memory, in order
        self.superseded: set[str] = set()  # coordinates a supersede may have marked
        self.namespace = ["load", f"c{index}"]  # the items' namespace; keys like coordinates
        self.item_states: dict[str, set[State]] = {}
        self.item_present: dict[str, None] = {}
        self.new_items = 0
        self.item_writes: dict[str, ItemWrite] = {}  # text -> the item write that sent it
        self.conversation = f"load-c{index}"  # the messages' conversation; ids like "3-17"
        self.message_states: dict[str, set[State]] = {}
        self.sent_vectors: dict[str, list[float]] = {}  # text -> the vector sent with it
        self.new_sent = 0
        self.violations: list[str] = []
        self.crashed: BaseException | None = None
        self._serial = 0
        self._retry: Request | None = None
        kinds = (
            "batch",
            "single",
            "replace",
            "supersede",
            "delete",
            "get",
            "search",
            "item_put",
            "item_delete",
            "item_get",
            "messages",
        )
        self._kinds = [k for k in kinds if getattr(mix, k) > 0]
        self._weights = [float(getattr(mix, k)) for k in self._kinds]

    # -- the plan ---------------------------------------------------------------------------
    def _text(self) -> str:
        self._serial += 1
        rng = self.rng
        return (
            f"{rng.choice(WHO)} {rng.choice(DID)} {rng.choice(WHAT)} {rng.choice(WHERE)} "
            f"(client {self.index}, write {self._serial})"
        )

    def _write(self, coord: str) -> Write:
        rng = self.rng
        text = self._text()
        vector = None
        if rng.random() < self.mix.own_vectors:
            vector = [round(rng.gauss(0.0, 1.0), 4) for _ in range(self.dimension)]
            self.sent_vectors[text] = vector
        return Write(coord, text, vector)

    def _new_coord(self) -> str:
        self.new_sent += 1
        return f"{self.index},{self.new_sent}"

    def _room(self) -> int:
        return 1 << 30 if self.max_new is None else self.max_new - self.new_sent

    def next_request(self) -> Request | None:
        """The next request of the plan; None when ``max_new`` coordinates were sent."""
        if self._retry is not None:
            again, self._retry = self._retry, None
            return Request(again.kind, again.writes, again.coord)
        if self._room() <= 0:
            return None
        kind = self.rng.choices(self._kinds, self._weights)[0]
        if kind in ("replace", "delete", "get") and not self.present:
            kind = "single"
        if kind == "supersede":
            current = [c for c in self.present if c not in self.superseded]
            new = (self._write(self._new_coord()),)
            return (
                Request("supersede", new, self.rng.choice(current))
                if current
                else Request("store", new)
            )
        if kind.startswith("item_"):
            return self._item_request(kind)
        if kind == "messages":
            count = min(self.mix.messages_per_post, self._room())
            return Request("messages", tuple(self._write(self._new_coord()) for _ in range(count)))
        if kind == "batch":
            used = self.rng.sample(
                list(self.present), min(self.mix.replaced_per_batch, len(self.present))
            )
            room = min(self.mix.batch_size - len(used), self._room())
            fresh = [self._new_coord() for _ in range(room)]
            coords = fresh + used
            self.rng.shuffle(coords)
            return Request("batch", tuple(self._write(c) for c in coords))
        if kind == "single":
            return Request("store", (self._write(self._new_coord()),))
        if kind == "replace":
            return Request("store", (self._write(self.rng.choice(list(self.present))),))
        if kind == "search":
            # Every query its own text, as users' are (the server caches query embeddings).
            self._serial += 1
            rng = self.rng
            query = f"who {rng.choice(DID)} {rng.choice(WHAT)} {rng.choice(WHERE)}? #{self._serial}"
            return Request("search", query=f"{query} (client {self.index})")
        return Request(kind, coord=self.rng.choice(list(self.present)))

    def _item_request(self, kind: str) -> Request:
        if kind != "item_put" and not self.item_present:
            kind = "item_put"
        if kind == "item_put":
            if self.item_present and self.rng.random() < 0.5:
                key = self.rng.choice(list(self.item_present))
            else:
                self.new_items += 1
                key = f"{self.index}-{self.new_items}"
            return Request("item_put", (self._item_write(key),))
        return Request(kind, coord=self.rng.choice(list(self.item_present)))

    def _item_write(self, key: str) -> ItemWrite:
        rng = self.rng
        text = self._text()
        form = "text"
        if self.mix.item_forms[1:] != (0.0, 0.0, 0.0):  # the default mix draws nothing more
            form = rng.choices(ITEM_FORMS, self.mix.item_forms)[0]
        tags = tuple(rng.sample(TAGS, rng.randint(1, 2))) if form in ("paths", "space") else ()
        vectors: tuple[tuple[str, tuple[float, ...]], ...] = ()
        if form == "space":
            vectors = tuple(
                (
                    path,
                    tuple(
                        round(rng.gauss(0.0, 1.0), 4) for _ in range(self.mix.item_space_dimension)
                    ),
                )
                for path in ("text", *["tags[*]"] * len(tags))
            )
        write = ItemWrite(key, text, None, form, tags, self.mix.item_space or None, vectors)
        self.item_writes[text] = write
        return write

    # -- sending ----------------------------------------------------------------------------
    def send(self, http: httpx.Client, request: Request) -> None:
        """Send ``request`` and record the answer (or its absence) in it."""
        request.started = time.monotonic()
        try:
            if request.kind == "batch":
                response = http.post(
                    "/memories/batch", json={"memories": [w.body() for w in request.writes]}
                )
            elif request.kind == "store":
                response = http.post("/memories", json=request.writes[0].body())
            elif request.kind == "supersede":
                body = {**request.writes[0].body(), "supersedes": [request.coord]}
                response = http.post("/memories", json=body)
            elif request.kind == "delete":
                response = http.delete(f"/memories/{request.coord}")
            elif request.kind == "get":
                response = http.get(f"/memories/{request.coord}")
            elif request.kind == "messages":
                messages = [
                    {"id": w.coord, "role": "user", "content": w.text} for w in request.writes
                ]
                response = http.post(
                    f"/conversations/{self.conversation}/messages",
                    json={"user_id": f"u{self.index}", "messages": messages},
                )
            elif request.kind == "item_put":
                write = request.writes[0]
                assert isinstance(write, ItemWrite)
                response = http.put("/items", json=write.item_body(self.namespace))
            elif request.kind in ("item_delete", "item_get"):
                params = {"namespace": self.namespace, "key": request.coord}
                method = http.delete if request.kind == "item_delete" else http.get
                response = method("/items", params=params)
            else:
                response = http.post("/memories/search", json={"query": request.query, "top_k": 5})
        except httpx.HTTPError as exc:
            request.seconds = time.monotonic() - request.started
            request.error = f"{type(exc).__name__}: {exc}"
            return
        request.seconds = time.monotonic() - request.started
        request.status = response.status_code
        try:
            request.body = response.json()
        except ValueError:
            request.body = response.text

    def apply(self, request: Request) -> None:
        """Update the possible states from the answer; check a read against them."""
        settled = request.acknowledged
        if request.is_write and not settled and self.rng.random() < self.mix.retry:
            self._retry = request  # as a client would: the same request once more
        if request.kind.startswith("item_"):
            self._apply_item(request, settled)
        elif request.kind == "messages":
            # Never replaced: an acknowledged message holds its text; one posted without an
            # answer is there (with it) or not. A resend (same ids, same texts) changes nothing.
            for write in request.writes:
                before = self.message_states.get(write.coord, {ABSENT})
                self.message_states[write.coord] = (
                    {write.text} if settled else before | {write.text}
                )
            if request.status is not None and not settled and request.status != 503:
                self.violations.append(f"messages refused: {request.describe()}")
        elif request.kind in ("store", "batch", "supersede"):
            # A supersede leaves its target's text as it was; until an acknowledged write
            # there, the target is (maybe) superseded and not superseded again.
            if request.kind == "supersede":
                self.superseded.add(request.coord)
            for write in request.writes:
                before = self.states.get(write.coord, {ABSENT})
                self._set(write.coord, {write.text} if settled else before | {write.text})
                if settled:
                    self.superseded.discard(write.coord)
        elif request.kind == "delete":
            before = self.states.get(request.coord, {ABSENT})
            if request.status == 404 and ABSENT not in before:
                self.violations.append(f"acknowledged memory missing: {request.describe()}")
            gone = settled or request.status == 404
            self._set(request.coord, {ABSENT} if gone else before | {ABSENT})
        elif request.kind == "get":
            possible = self.states.get(request.coord, {ABSENT})
            if request.status == 200:
                text = request.body["payload"]["text"]
                if text not in possible:
                    self.violations.append(
                        f"read {text!r} at {request.coord}, possible: {possible}"
                    )
            elif request.status == 404 and ABSENT not in possible:
                self.violations.append(f"acknowledged memory missing: {request.describe()}")
        elif request.kind == "search" and request.status == 200:
            for hit in request.body["results"]:
                mine = self.states.get(hit["coord"])
                if mine is not None and hit["payload"].get("text") not in mine:
                    self.violations.append(
                        f"search found {hit['payload'].get('text')!r} at {hit['coord']}, "
                        f"possible: {mine}"
                    )

    def _apply_item(self, request: Request, settled: bool) -> None:
        """The item counterpart of :meth:`apply`, on the item keys' own states."""
        if request.kind == "item_put":
            write = request.writes[0]
            before = self.item_states.get(write.coord, {ABSENT})
            self._set_item(write.coord, {write.text} if settled else before | {write.text})
            return
        possible = self.item_states.get(request.coord, {ABSENT})
        if request.status == 404 and ABSENT not in possible:
            self.violations.append(f"acknowledged item missing: {request.describe()}")
        if request.kind == "item_delete":
            gone = settled or request.status == 404
            self._set_item(request.coord, {ABSENT} if gone else possible | {ABSENT})
        elif request.status == 200 and request.body["value"]["text"] not in possible:
            self.violations.append(
                f"read item {request.body['value']['text']!r} at {request.coord}, "
                f"possible: {possible}"
            )

    def _set_item(self, key: str, states: set[State]) -> None:
        self.item_states[key] = states
        if ABSENT not in states and len(states) == 1:
            self.item_present[key] = None
        else:
            self.item_present.pop(key, None)

    def _set(self, coord: str, states: set[State]) -> None:
        self.states[coord] = states
        if ABSENT not in states and len(states) == 1:
            self.present[coord] = None
        else:
            self.present.pop(coord, None)

    def run(self) -> None:
        try:
            with httpx.Client(
                base_url=self.base_url, headers=self.headers, timeout=self.timeout
            ) as http:
                while not self.stop.is_set():
                    request = self.next_request()
                    if request is None:
                        return
                    if self.up is not None and not self.up.wait(self.up_timeout):
                        self.violations.append(f"server not back within {self.up_timeout} s")
                        return
                    self.send(http, request)
                    self.apply(request)
                    self.requests.append(request)
        except BaseException as exc:  # noqa: BLE001 - re-raised by join_all in the test thread
            self.crashed = exc


def join_all(loaders: Iterable[Loader], timeout: float) -> None:
    """Wait for the loaders (at most ``timeout`` seconds in all); fail if one is still
    running or crashed."""
    deadline = time.monotonic() + timeout
    for loader in loaders:
        loader.join(max(0.0, deadline - time.monotonic()))
        assert not loader.is_alive(), f"{loader.name} still running after {timeout:.0f} s"
        if loader.crashed is not None:
            raise AssertionError(f"{loader.name} crashed") from loader.crashed


def all_requests(loaders: Iterable[Loader]) -> list[Request]:
    return [r for loader in loaders for r in loader.requests]


def summary(requests: Sequence[Request]) -> str:
    """Counts by kind and status ('-' for no answer)."""
    counts = Counter(f"{r.kind} {r.status if r.status is not None else '-'}" for r in requests)
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
