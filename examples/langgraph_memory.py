"""A small LangGraph graph (no LLM) that keeps long-term memory in SomaFractalMemory.

The graph has two nodes: `remember` writes what the user said into the store under the user's
namespace, and `recall` searches that namespace by meaning and answers with the closest
memories. The store is `SFMStore` with the server's own embedding model (`index` without
`embed`), so nothing else is needed.

    make run                              # in another terminal: SFM on :9595
    export SOMA_URL=http://127.0.0.1:9595
    export SOMA_API_KEY=$(cat .data/dev-api-key)
    pip install "somafractalmemory[langgraph]" langgraph
    python examples/langgraph_memory.py
"""

from __future__ import annotations

import os
import uuid
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from somafractalmemory.langgraph import SFMStore


class State(TypedDict):
    user: str
    said: list[str]
    question: str
    answer: list[str]


def remember(state: State, *, store: BaseStore) -> dict[str, object]:
    """Keep each thing the user said as its own item in ("memories", <user>)."""
    for text in state["said"]:
        store.put(("memories", state["user"]), uuid.uuid4().hex, {"text": text}, ttl=None)
    return {}


def recall(state: State, *, store: BaseStore) -> dict[str, object]:
    """Find what the user said that is closest in meaning to the question."""
    hits = store.search(("memories", state["user"]), query=state["question"], limit=2)
    return {"answer": [hit.value["text"] for hit in hits]}


def build(store: BaseStore):  # type: ignore[no-untyped-def]
    graph = StateGraph(State)
    graph.add_node("remember", remember)
    graph.add_node("recall", recall)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "recall")
    graph.add_edge("recall", END)
    return graph.compile(store=store)


def main() -> None:
    store = SFMStore(
        base_url=os.environ.get("SOMA_URL", "http://127.0.0.1:9595"),
        api_key=os.environ["SOMA_API_KEY"],
        index={"fields": ["text"]},  # the server's own model embeds `text`
    )
    user = f"user-{uuid.uuid4().hex[:8]}"
    app = build(store)
    result = app.invoke(
        {
            "user": user,
            "said": [
                "My sister lives in Lisbon and teaches chemistry.",
                "I am allergic to peanuts.",
                "We are planning a trip to Japan in April.",
            ],
            "question": "What food should I avoid?",
            "answer": [],
        }
    )
    print(f"recalled for {user}: {result['answer']}")
    assert result["answer"][0] == "I am allergic to peanuts."
    for key in [item.key for item in store.search(("memories", user), limit=10)]:
        store.delete(("memories", user), key)
    store.close()


if __name__ == "__main__":
    main()
