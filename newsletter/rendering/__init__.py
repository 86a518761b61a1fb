"""Email rendering: Jinja2 templates, CSS inlining with premailer, the text part."""
