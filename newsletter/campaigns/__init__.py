"""Campaigns: the weekly digest, broadcasts, and the runner that sends them."""
