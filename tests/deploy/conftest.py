from tests.k8s_emulator.fixtures import k8s_emulator, make_k8s_emulator
from tests.platforms.kubernetes.conftest import make_world

__all__ = ["k8s_emulator", "make_k8s_emulator", "make_world"]
