"""Analysis tools: attention maps of the transfer blocks (`attention`), the benchmark (`bench`)
and the comparison of inference paths (`compare`).
"""
