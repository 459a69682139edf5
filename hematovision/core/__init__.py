"""The serving core: where files and artifacts live, how images are read and framed, and the classifier."""
