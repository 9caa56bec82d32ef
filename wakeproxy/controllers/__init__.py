"""The bundled controllers: build apps from source, deploy releases, run PR review apps.

Modules: `builds` (a build, its state and log), `builder` (git fetch + build command into
a release directory), `deployer` (switch an app to a release with no gap; add and delete
apps at runtime), `review` (pull request events → review apps, one worker each),
`webhook` (GitHub signatures, delivery dedupe, payloads), `local` (the controllers of the
local platform together), `api` (their admin routes), `errors`.

Data flow is written at the top of `local`. The board and the routes change only through
the lifecycle, their one writer. It sits above the platforms and obs, below the
composition root.
"""
