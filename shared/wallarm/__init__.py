"""Wallarm's side of the wire: the notification body and the event types it carries."""
