"""HTTP side of `modelbot serve`: the WSGI router, Alertmanager webhook, health and Prometheus metrics."""
