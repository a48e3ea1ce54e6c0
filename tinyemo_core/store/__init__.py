"""On-disk stores: manifests, feature shards, label tables (the contract between stages)."""
