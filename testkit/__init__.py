"""What tests/ and benchmarks/ share: real stores of their own beside a shared stack
(:mod:`testkit.stores`), the SFM server as a subprocess (:mod:`testkit.server`), and a load
generator with the check of the stores after it (:mod:`testkit.loadgen`,
:mod:`testkit.verdict`).

A top-level package of the repository, not part of the installed one: tests import it from
the repository root (pytest puts it on ``sys.path``), benchmarks add the root themselves. It
imports nothing of ``tests`` or ``benchmarks``.
"""
