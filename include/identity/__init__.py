"""Identity resolution: measuring it (quality against the sandbox ground truth)."""
