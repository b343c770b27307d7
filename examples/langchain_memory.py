"""LangChain over SFM without an LLM: a vector store as a retriever, and a chat history.

The server embeds (no embedding model on this side); the chat history is a conversation, so
the turns are recalled by meaning too. Every step runs without a model call.

pip install "somafractalmemory[langchain]"
export SOMA_URL=http://127.0.0.1:9595 SOMA_API_KEY=sfm_...
python examples/langchain_memory.py
"""

import os
import uuid

from langchain_core.messages import AIMessage, HumanMessage

from somafractalmemory.client import SFMClient
from somafractalmemory.langchain import SFMVectorStore
from somafractalmemory.langchain_history import SFMChatMessageHistory


def main() -> None:
    url, key = os.environ["SOMA_URL"], os.environ["SOMA_API_KEY"]
    run = uuid.uuid4().hex[:8]
    with SFMClient(url, key) as client:
        store = SFMVectorStore(client, namespace=("examples", run))
        ids = store.add_texts(
            [
                "PostgreSQL is the source of truth; Milvus holds the vectors",
                "Redis only caches reads: when it is down, requests still succeed",
                "The memory browser lives at /ui",
            ],
            metadatas=[{"topic": "storage"}, {"topic": "storage"}, {"topic": "ui"}],
        )
        retriever = store.as_retriever(search_kwargs={"k": 1, "filter": {"topic": "storage"}})
        print("retrieved:", retriever.invoke("what happens if the cache fails?")[0].page_content)

        history = SFMChatMessageHistory(f"lc-{run}", user_id="ann", client=client)
        history.add_messages(
            [HumanMessage("I drink green tea, no sugar"), AIMessage("Noted: green tea.")]
        )
        print("history:", [(m.type, m.content) for m in history.messages])
        hits = client.search_messages("what does Ann drink?", conversation_id=f"lc-{run}")
        print("recalled:", hits.results[0].content)
        history.clear()
        print("after clear:", history.messages)
        store.delete(ids)
        print("documents left:", len(store.get_by_ids(ids)))


if __name__ == "__main__":
    main()
