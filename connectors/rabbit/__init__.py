"""Course code: connectors to message brokers."""
