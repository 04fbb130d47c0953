-- The registry's own database beside the read model's (POSTGRES_DB): Apicurio keeps its schemas there.
CREATE DATABASE apicurio OWNER tongcheng;
