"""Export and import of a tenant's memories and links as JSON Lines.

The format (``docs/export-import.md``): a header line
``{"format": "somafractalmemory-export", "version": 1, "embedding_model", "dimension",
"with_vectors"}``, then one memory per line, then one link per line, so an import creates
links after both their ends.

Export reads PostgreSQL a page at a time (keyset pagination by id), so neither the process nor
a database connection holds the tenant at once; it is not a point-in-time snapshot of a tenant
that is being written meanwhile. Import writes through :meth:`MemoryService.store_batch` and
:meth:`MemoryService.link`, the normal write path, and is idempotent: a memory or link
identical to what is stored is left untouched (not even ``updated_at`` changes). Bad lines
are reported by line number and skipped; the good ones land.
"""

from somafractalmemory.core.portability.export import (
    FORMAT,
    PAGE_SIZE,
    VERSION,
    dump_line,
    export_lines,
    export_records,
)
from somafractalmemory.core.portability.importer import (
    IMPORT_BATCH,
    Importer,
    import_lines,
    tenant_for_import,
)
from somafractalmemory.core.portability.lines import ImportReport, LineError

__all__ = [
    "FORMAT",
    "IMPORT_BATCH",
    "PAGE_SIZE",
    "VERSION",
    "ImportReport",
    "Importer",
    "LineError",
    "dump_line",
    "export_lines",
    "export_records",
    "import_lines",
    "tenant_for_import",
]
