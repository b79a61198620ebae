"""Analysis tools: attention maps of the transfer blocks (`attention`) and the benchmark (`bench`)."""
