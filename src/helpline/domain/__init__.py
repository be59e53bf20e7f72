"""The domain: tickets, organizations, API keys and their rules, free of I/O."""
