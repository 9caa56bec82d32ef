"""Observability and operation: logs, metrics and the admin server.

    data plane ──AccessRecord──► logging.access_sink ──► one JSON line per request
    model (board, ledger, stats) ──read at scrape──► metrics (families) ──► GET /metrics
    model (board's sleep history) ──read on request──► savings ──► GET /api/v1/savings
    admin API ──wake/sleep──► control plane (AppCommands); reads ──► views ◄── model

Everything here reads the shared model; nothing here writes it. App state changes only
through the control plane's commands.
"""
