"""Articles, topics, and their ingestion from feeds, Markdown and the staff API."""
