"""Thin kopf wiring: parse the event, hand it to the engine. Importing this
package registers every handler with kopf."""

from clone_operator.handlers import admission, lifecycle, objects, operations, watches

__all__ = ["admission", "lifecycle", "objects", "operations", "watches"]
