"""The face of sagemaker-callback-worker: the ``callback-worker`` command line, the demo and the operator commands.

This is the outer layer. It imports the daemon (:mod:`worker`), the settings (:mod:`config`), the handlers and, for
``emulate`` and ``demo``, the emulator (:mod:`emulator`); none of those imports anything from here.
"""
