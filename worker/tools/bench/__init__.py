"""`recstream bench`: stage and whole-path benchmarks with baselines, peers and rooflines."""
