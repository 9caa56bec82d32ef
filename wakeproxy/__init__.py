"""wakeproxy: a scale-to-zero front door.

Data flow, one way:

    client ─► dataplane (route Host → app, record activity, hold while asleep) ─► app endpoint
                  │ wake demand                        ▲ readiness board
                  ▼                                    │
              controlplane (waker, sweeper) ─► platform (local processes, Kubernetes)

`model` holds the shared state objects; each has exactly one writer, named in its docstring.
"""

__version__ = "0.1.0"
