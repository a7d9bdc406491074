"""Dataset preparation: from raw sources to train/val/test story records."""
