"""SFMVectorStore beyond LangChain's standard suite: metadata filters, scores, namespaces,
delete-all, ``from_texts``, the unused ``embedding``, and errors. Against the real server
(``make test-langchain`` runs this file beside the standard suite; not named ``test_*``, so
``make test`` does not collect it, as it lacks ``asyncio_mode=auto``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from somafractalmemory.client import InvalidInput, SFMClient
from somafractalmemory.langchain import SFMVectorStore
from testkit.server import ServerProcess

DOCS = [
    Document(
        id="tea", page_content="Alice drinks green tea every morning", metadata={"year": 2021}
    ),
    Document(id="car", page_content="The red car is parked outside", metadata={"year": 2019}),
    Document(
        id="cat", page_content="A cat sleeps on the sofa", metadata={"year": 2024, "pet": True}
    ),
]


class NeverCalled(Embeddings):
    """An embedding model that fails when used: the server embeds, the adapter must not."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise AssertionError("SFMVectorStore called embed_documents")

    def embed_query(self, text: str) -> list[float]:
        raise AssertionError("SFMVectorStore called embed_query")


StoreFactory = Callable[..., SFMVectorStore]


@pytest.fixture
async def make_store(tenant_key: str, sfm_server: ServerProcess) -> AsyncIterator[StoreFactory]:
    """Stores of one fresh tenant (namespace as asked), all closed at the end."""
    made: list[SFMVectorStore] = []

    def make(namespace: tuple[str, ...] = ("langchain",)) -> SFMVectorStore:
        store = SFMVectorStore(
            base_url=sfm_server.url,
            api_key=tenant_key,
            namespace=namespace,
            embedding=NeverCalled(),
        )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


def test_metadata_filter_applies_before_k(make_store: StoreFactory) -> None:
    store = make_store()
    store.add_documents(DOCS)
    # The closest document ("tea") fails the filter; k=1 still finds one that passes.
    found = store.similarity_search("green tea", k=1, filter={"year": {"$gte": 2022}})
    assert [d.id for d in found] == ["cat"]
    assert [d.id for d in store.similarity_search("tea", k=3, filter={"pet": True})] == ["cat"]
    assert store.similarity_search("tea", k=3, filter={"year": 1999}) == []


async def test_async_filter_and_scores(make_store: StoreFactory) -> None:
    store = make_store()
    await store.aadd_documents(DOCS)
    scored = await store.asimilarity_search_with_score("Alice drinks green tea every morning", k=3)
    assert scored[0][0].id == "tea"
    assert scored[0][1] == pytest.approx(1.0, abs=1e-3)  # cosine similarity with itself
    assert scored[0][1] > scored[1][1] >= scored[2][1]
    found = await store.asimilarity_search("tea", k=2, filter={"year": {"$lt": 2020}})
    assert [d.id for d in found] == ["car"]


def test_relevance_scores_are_in_unit_range_and_ordered(make_store: StoreFactory) -> None:
    store = make_store()
    store.add_documents(DOCS)
    raw = store.similarity_search_with_score("a sleeping cat", k=3)
    relevant = store.similarity_search_with_relevance_scores("a sleeping cat", k=3)
    assert [d.id for d, _ in relevant] == [d.id for d, _ in raw]
    assert relevant[0][0].id == "cat"
    for (_, score), (_, relevance) in zip(raw, relevant, strict=True):
        assert relevance == pytest.approx((1 + score) / 2)
        assert 0.0 <= relevance <= 1.0


def test_namespaces_keep_ids_apart_and_searches_include_those_below(
    make_store: StoreFactory,
) -> None:
    top, below, other = make_store(("kb",)), make_store(("kb", "v2")), make_store(("other",))
    top.add_texts(["the top namespace's text"], ids=["same"])
    below.add_texts(["the lower namespace's text"], ids=["same"])
    other.add_texts(["another namespace's text"], ids=["same"])
    assert [d.page_content for d in top.get_by_ids(["same"])] == ["the top namespace's text"]
    assert [d.page_content for d in below.get_by_ids(["same"])] == ["the lower namespace's text"]
    assert len(top.similarity_search("text", k=10)) == 2  # its own and the one below
    assert len(other.similarity_search("text", k=10)) == 1


def test_delete_all_deletes_only_the_stores_own_namespace(make_store: StoreFactory) -> None:
    top, below = make_store(("kb",)), make_store(("kb", "v2"))
    ids = top.add_texts([f"document number {i}" for i in range(5)])
    below.add_texts(["kept: it is in the namespace below"], ids=["kept"])
    assert top.delete() is True
    assert top.get_by_ids(ids) == []
    assert [d.id for d in top.similarity_search("document", k=10)] == ["kept"]


async def test_adelete_all(make_store: StoreFactory) -> None:
    store, other = make_store(("a",)), make_store(("b",))
    ids = await store.aadd_texts(["one", "two"])
    await other.aadd_texts(["three"], ids=["3"])
    assert await store.adelete() is True
    assert await store.aget_by_ids(ids) == []
    assert [d.id for d in await other.aget_by_ids(["3"])] == ["3"]


def test_from_texts_never_calls_the_embedding(tenant_key: str, sfm_server: ServerProcess) -> None:
    store = SFMVectorStore.from_texts(
        ["green tea", "black coffee"],
        NeverCalled(),
        [{"kind": "tea"}, {"kind": "coffee"}],
        ids=["t", "c"],
        base_url=sfm_server.url,
        api_key=tenant_key,
        namespace=("from", "texts"),
    )
    with store:
        assert isinstance(store.embeddings, NeverCalled)
        found = store.similarity_search("coffee", k=1)
        assert found == [Document(id="c", page_content="black coffee", metadata={"kind": "coffee"})]


async def test_afrom_texts(tenant_key: str, sfm_server: ServerProcess) -> None:
    store = await SFMVectorStore.afrom_texts(
        ["green tea"], NeverCalled(), base_url=sfm_server.url, api_key=tenant_key
    )
    async with store:
        (found,) = await store.asimilarity_search("tea", k=1)
        assert found.page_content == "green tea"
        assert found.id is not None
        assert len(found.id) == 32  # a generated uuid4, hex


def test_bad_input_fails_before_or_at_the_server(make_store: StoreFactory) -> None:
    store = make_store()
    with pytest.raises(ValueError, match="metadatas: 1 given for 2 texts"):
        store.add_texts(["a", "b"], [{}])
    with pytest.raises(ValueError, match="ids: 1 given for 2 texts"):
        store.add_texts(["a", "b"], ids=["x"])
    with pytest.raises(ValueError, match="k: between 1 and 1000"):
        store.similarity_search("a", k=0)
    with pytest.raises(InvalidInput, match="key"):
        store.add_texts(["a"], ids=["k" * 513])  # keys are at most 512 characters
    with pytest.raises(InvalidInput, match="filter"):
        store.similarity_search("a", filter={"year": {"$near": 1}})


async def test_a_store_uses_only_the_clients_it_was_given(sfm_server: ServerProcess) -> None:
    with pytest.raises(ValueError, match="give a base_url"):
        SFMVectorStore()
    with pytest.raises(ValueError, match="namespace"):
        SFMVectorStore(base_url=sfm_server.url, namespace=())
    with SFMClient(sfm_server.url, "unused") as client:
        store = SFMVectorStore(client)
        with pytest.raises(ValueError, match="no AsyncSFMClient"):
            await store.asimilarity_search("a")
