"""The ``patchscope`` program, as its console script starts it (``patchscope.cli.program:run``).

Importing this module is starting the program: its first act holds back the signals that end a
run, because one that landed while the modules below are still being imported would raise
KeyboardInterrupt inside an import and print a traceback. ``_signal``, the C module ``signal``
wraps, is built in: importing ``signal`` (and the enum module under it) would itself take
~10 ms of that window. :func:`interrupt.install` then hands the held signals to the thread that
ends the run cleanly. Nothing else imports this module.
"""

import _signal

_signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT, _signal.SIGTERM})

from patchscope.cli import interrupt  # noqa: E402 -- after the signals are held


def run() -> None:
    interrupt.install()
    from patchscope.cli import main

    main.run()
