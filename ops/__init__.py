"""Operations, the top layer: the `tongcheng` command line (`cli.py`), the local broker and registry,
the lag exporter, the benchmarks and chaos drills, Prometheus, Grafana and Kubernetes files."""
