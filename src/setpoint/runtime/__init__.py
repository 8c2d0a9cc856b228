"""Where instances run: `local` (this host, under supervisord); Kubernetes comes later."""
