"""`bot demo`: the product run end to end against the embedded paper exchange, no keys needed (a command of the
product, above the engine: the paper exchange itself depends on nothing of the bot outside it)."""
