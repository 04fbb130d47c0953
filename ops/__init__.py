"""Operations: the local broker and registry, the lag exporter, Prometheus and Grafana files."""
