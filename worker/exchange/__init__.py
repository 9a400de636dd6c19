"""Exchange layer: small ports, the paper exchange, and the ccxt adapter."""
