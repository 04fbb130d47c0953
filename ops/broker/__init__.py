"""The local Kafka broker and Apicurio registry, fetched from Maven Central and run on 127.0.0.1."""
