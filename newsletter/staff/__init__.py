"""Staff access: bearer tokens for the staff API."""
