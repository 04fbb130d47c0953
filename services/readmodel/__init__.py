"""The read-model worker: derived topics into SQL tables."""
