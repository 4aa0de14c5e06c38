"""Everything printed: the console rule, text helpers, the one render entry and each screen."""
