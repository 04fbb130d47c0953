"""Avro schemas of the Tongcheng contract (`avro/*.avsc`), their catalogue, the one codec and the JSON conversion."""
