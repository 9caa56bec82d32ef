from tests.e2e.conftest import start_wakeproxy

__all__ = ["start_wakeproxy"]
