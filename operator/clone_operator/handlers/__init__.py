"""Thin kopf wiring: parse the event, hand it to the engine. Importing this
package registers every handler with kopf."""

from clone_operator.handlers import lifecycle, operations, watches

__all__ = ["lifecycle", "operations", "watches"]
