"""The patterns the notebooks teach, one module per pattern, as plain Restate services.

Each module starts with a sketch of its pattern and has one short comment per durable step. A
pattern imports the Restate SDK and the simulated systems only (and ``database``, ``tracing``
where it keeps data or makes spans) — never the lab or the views.
"""
