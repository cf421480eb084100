"""§2 Deep Reveal, the label game: masked images, game assets, export import, simulated players."""
