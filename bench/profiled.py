"""`python -m bench.profiled OUT.prof <uvicorn arguments>`: uvicorn under cProfile, the profile
written when it stops. (uvicorn re-raises SIGTERM after its graceful shutdown, which would kill
`python -m cProfile` before it writes anything.)"""

from __future__ import annotations

import cProfile
import signal
import sys

import uvicorn.main


def main() -> None:
    out = sys.argv[1]
    sys.argv = ["uvicorn", *sys.argv[2:]]
    signal.raise_signal = lambda _signal: None
    profile = cProfile.Profile()
    profile.enable()
    try:
        uvicorn.main.main()
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
