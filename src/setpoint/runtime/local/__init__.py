"""The local runtime: installs, supervises and converges instances on this host."""
