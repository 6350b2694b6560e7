"""Data modules, tokenisers, generators and downloads for the LRA tasks."""
