"""The memory browser at ``/ui``: static shell pages whose script calls the JSON API.

The pages carry no data and need no key; the browser keeps the API key in
``sessionStorage`` and sends it as ``Authorization: Bearer`` with each ``fetch``.
"""
