"""Avro schemas of the Tongcheng contract (`avro/*.avsc`) and the one codec that reads them."""
