"""Exit 0 when the API key given as the first argument is valid (used by `make run`)."""

from __future__ import annotations

import sys

from somafractalmemory.core.keys import KeyService
from somafractalmemory.errors import SFMError
from somafractalmemory.settings import get_settings
from somafractalmemory.stack import create_postgres_store


def main() -> int:
    store = create_postgres_store(get_settings())
    try:
        KeyService(store).authenticate(sys.argv[1] if len(sys.argv) > 1 else None)
    except SFMError:
        return 1
    finally:
        store.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
