"""Pure decisions: state machines, transitions, status and conditions.

No I/O here: functions take what was observed and return what to write. Must not
import the engine, its services or a client (pyproject's layers contract); it may
name the API server's answers (`kube.errors`), an observation like any other.
"""
