"""Data: transforms from preprocessing settings, datasets and image loading."""
