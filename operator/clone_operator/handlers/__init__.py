"""Thin kopf wiring: parse the event, hand it to the engine. Importing this
package registers every handler with kopf.

Owns kopf's registrations (watches, start and stop, probes, the admission
webhook's entry). Must not decide (reconcile/), build (builders/) or keep state of
its own: it only routes to the engine and its services."""

from clone_operator.handlers import admission, lifecycle, resources, watches

__all__ = ["admission", "lifecycle", "resources", "watches"]
