"""Fixtures for the emulator's own tests (the emulator package sits beside this one)."""

from tests.k8s_emulator.fixtures import k8s_api, k8s_emulator, k8s_emulator_tls, make_k8s_emulator

__all__ = ["k8s_api", "k8s_emulator", "k8s_emulator_tls", "make_k8s_emulator"]
