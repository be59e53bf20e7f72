"""Notifications: events recorded with the change that caused them, delivered
later with retries."""
