"""A Binance USDⓈ-M compatible paper exchange (REST, user data stream, control API) for loopback use."""
