"""Shared state between the planes: stdlib and asyncio only.

Writers: the route table and the readiness board are written by the control plane only;
the activity ledger and request stats by the data plane only; wake demand is written by
the data plane and drained by the control plane. Everyone else reads.
"""
