"""Publishing trained weights as self-contained model folders: generation config and model card."""
