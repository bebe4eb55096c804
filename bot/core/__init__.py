"""The pure core: sizing, risk and settlement decisions over Decimal. No I/O, no clock, no ccxt."""
