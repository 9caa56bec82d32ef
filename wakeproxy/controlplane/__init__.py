"""The control plane: decides when apps wake and sleep, and is the board's one writer.

Data flow::

    settings --install_apps--> ReadinessBoard + Routes
    data plane --WakeDemand--> Lifecycle --Platform.wake/sleep--> platform
    platform --AppExited--> Lifecycle
    ActivityLedger + ReadinessBoard --Sweeper.due--> Lifecycle.begin_sleep

Modules: `platform` (the interface a platform implements), `lifecycle` (single-flight
wakes and sleeps), `sweeper` (idle rule), `apps` (configured apps → board and routes),
`errors` (typed command errors), `tasks` (named, guarded background tasks).
It never imports the data plane or a concrete platform.
"""
