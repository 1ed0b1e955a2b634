"""The Adobe Commerce Optimizer target: wire models, IMS auth, pacing, the sink."""
