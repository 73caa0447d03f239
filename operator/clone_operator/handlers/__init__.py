"""Thin kopf wiring: parse the event, hand it to the engine. Importing this
package registers every handler with kopf."""

from clone_operator.handlers import admission, lifecycle, resources, watches

__all__ = ["admission", "lifecycle", "resources", "watches"]
