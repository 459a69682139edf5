"""Heatmaps of where the network looked, how faithful they are, and their export."""
