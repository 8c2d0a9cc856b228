"""One module per managed server: how to start it, know it is ready, and operate it."""
