"""Store a memory and recall it by meaning with the Python client.

export SOMA_URL=http://127.0.0.1:9595
export SOMA_API_KEY=sfm_...        # from `somafractalmemory keys create --tenant me`
python examples/quickstart_client.py
"""

import os

from somafractalmemory.client import SFMClient

with SFMClient(os.environ["SOMA_URL"], os.environ["SOMA_API_KEY"]) as sfm:
    sfm.store("1,2,3", {"text": "The user prefers green tea", "topic": "drinks"})
    print(sfm.search("what does the user like to drink?", top_k=1).results[0].payload["text"])
