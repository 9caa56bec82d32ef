from tests.platforms.procs import no_leftover_processes

__all__ = ["no_leftover_processes"]
