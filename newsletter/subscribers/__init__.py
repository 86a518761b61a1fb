"""Signup, double opt-in, preferences, unsubscribe, suppression and consent."""
