"""Sample-quality scoring: features, cached real statistics, the Frechet distance."""
