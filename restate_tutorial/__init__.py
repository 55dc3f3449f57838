"""restate-tutorial: durable execution with Restate, run for real from Jupyter notebooks.

The map (imports run downwards only: a pattern knows no lab, the lab knows no pattern):

``patterns/``   the Restate services the notebooks teach, one module per pattern: ``basics``,
                ``sagas`` (+ ``fast_booking``), ``event_transactions``, ``event_enrichment``,
                ``approvals`` (a workflow that waits for a person), ``secure_booking``
                (a saga step that waits for another system's callback), ``schedules``
                (delayed calls, a recurring chain, cron), ``fan_out`` (many calls at once, a
                deadline, a limit per airline, a rate limit), ``agent`` (a durable AI agent),
                ``versions`` (code changed in flight), ``encryption`` (sealed journal values),
                ``accounts`` (your own PostgreSQL, exactly once), ``checkout`` (steps that
                leave spans in Restate's trace); ``keys`` and ``payloads`` are
                what they share (journaled keys, input checked at the edge).
``simulated/``  the downstream systems the patterns call (flights, payments, social media,
                moderation, mailer, airline, bank, fares, quotes, a language model) — not
                Restate; each keeps a ledger to assert on.
``database``    your own database: which services keep data in PostgreSQL, and where it is.
``tracing``     OpenTelemetry for the services: their spans in Restate's trace, exported.
``lab/``        the runtime: a real restate-server (or cluster), a Kafka broker, the service
                host and, for a service that needs it, PostgreSQL; a trace collector for a
                lab with ``traces=True``; driven from Python (``Lab``, ``AdminClient``,
                ``IngressClient``).
``views``       what Restate recorded, drawn: journals, state, invocations, timelines, traces.
``logbook``     handler logs kept for the notebooks, one line per failed attempt.
``scenarios``   the original example's data: services, subscriptions, booking, posts.
``course/``     the notebooks' exercises (checks), their solutions and notebook helpers.
Tools: ``testing`` (the pytest plugin), ``crashes`` (a handler crash-tested at every journal
entry), ``soak`` (the chaos soak) and ``__main__`` (the CLI: ``python -m restate_tutorial up |
demo | soak | skip-record | install-restate``); nothing imports the CLI.
"""
