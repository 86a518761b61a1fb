"""Getting messages out: MIME building, SMTP transport, and the dev inbox."""
