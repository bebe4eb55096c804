"""The exchange edge: ccxt clients and everything that touches the network."""
