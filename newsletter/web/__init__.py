"""The HTTP app: public pages, the JSON API, and the dev inbox."""
